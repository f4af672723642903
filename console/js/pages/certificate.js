// Placeholder until the page lands.
import { notice, pageHeader, replace } from '../dom.js';

export function render(main) {
  replace(main, pageHeader('Certificate'), notice('info', 'This page is being built.'));
}
