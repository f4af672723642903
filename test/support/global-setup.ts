// Compiles dist/ once before any suite spawns `gatehouse`, so suites never race to build.
// @ts-expect-error: a plain ES module beside the launcher
import { buildIfNeeded } from '../../bin/build-if-needed.js';

export default function setup(): void {
  buildIfNeeded({ quiet: true });
}
