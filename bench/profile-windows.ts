// Where a thread's time went inside measured windows only: reads a `node --cpu-prof` profile and the
// windows a tool wrote (submit-profile's SUBMIT_PROFILE_WINDOWS: [[startUs, endUs], ...] on the
// profile's own clock) and prints self time per window, by function or by package, largest first.
//   SUBMIT_PROFILE_WINDOWS=w.json node --cpu-prof --cpu-prof-dir=prof --cpu-prof-interval 100 dist/bench/submit-profile.js 60
//   node dist/bench/profile-windows.js prof/CPU.<...>.001.cpuprofile w.json [fn|pkg] [top]
// A sample is wall time: under load a thread descheduled inside a system call (a socket write, an
// fsync) is charged to that call, so read it on a quiet machine, or compare shares, not sums.
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [file, windowsFile, mode = 'fn', top = '40'] = process.argv.slice(2);
if (file === undefined || windowsFile === undefined || (mode !== 'fn' && mode !== 'pkg')) {
  process.stderr.write('usage: profile-windows.js PROFILE.cpuprofile WINDOWS.json [fn|pkg] [top]\n');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const windows = (JSON.parse(readFileSync(windowsFile, 'utf8')) as [number, number][]).sort((a, b) => a[0] - b[0]);
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));

/** A package (node_modules/<name>), a Node.js module, or our own folder (dist/src/<room>). */
function keyOf(n: ProfileNode): string {
  const { functionName, url, lineNumber } = n.callFrame;
  const path = url.replace(/^file:\/\/.*?\/dist\//, 'dist/');
  if (mode === 'fn') return `${functionName || '(anonymous)'} ${path.split('/').slice(-2).join('/')}:${lineNumber}`;
  const pkg = path.match(/node_modules\/((@[^/]+\/)?[^/]+)/);
  if (pkg) return pkg[1]!;
  if (path.startsWith('node:')) return `node:${path.slice(5).split('/')[0]}`;
  return path ? path.split('/').slice(0, 3).join('/') : functionName || '(native)';
}

const self = new Map<string, number>();
let at = profile.startTime;
let w = 0;
let total = 0;
for (let i = 0; i < profile.samples.length; i++) {
  at += profile.timeDeltas[i]!;
  while (w < windows.length && at > windows[w]![1]) w++;
  if (w >= windows.length) break;
  if (at < windows[w]![0]) continue;
  const spent = profile.timeDeltas[i + 1] ?? 0; // a sample stands for the time until the next one
  const key = keyOf(nodes.get(profile.samples[i]!)!);
  self.set(key, (self.get(key) ?? 0) + spent);
  total += spent;
}
const per = (us: number) => (us / 1000 / windows.length).toFixed(3).padStart(8);
process.stdout.write(`${windows.length} windows; ms per window: ${per(total)} in all\n`);
for (const [key, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(top))) process.stdout.write(`${per(us)}  ${key}\n`);
