// Tasks in namespaces of their own, for an engine that runs as root without bubblewrap: the set-up
// run inside them, the command prefix that makes them, and the start-up check that they work here.
// Apart because it is a whole second sandbox, used only when bubblewrap is not.
import { randomBytes } from 'node:crypto';
import { access, rm, writeFile } from 'node:fs/promises';
import { executable, findTool, run, SYSTEM_BIN } from './system-tools.js';
import { PRIVATE_TMP } from './world-writable.js';

export interface NamespaceTools {
  unshare: string;
  mount: string;
  mkdir: string;
  sh: string;
}

// Runs as root inside the task's fresh namespaces, before the task's own uid is taken. First each
// read-only folder is bound over itself and made read-only. Then ONE tmpfs,
// size-limited, is mounted over the first of the folders to cover; each folder gets a 1777
// subfolder of it bound over it (the first one's own last, hiding the tmpfs root), so everything a
// task writes into /tmp, /var/tmp, /dev/shm, /run/lock and the other world-writable folders
// together is bounded once by that size. When the job's area or the runners lay under a covered
// or read-only folder (a data root in /tmp), they are bound back from descriptors opened before
// the mounts (from the host's mount, so writable as before).
// The text is fixed; paths and sizes come as arguments, never as code. Links are never mounted over.
const NAMESPACE_SETUP = `set -eu
mnt=$1 mk=$2 size=$3 area=$4 runtime=$5 m=$6
shift 6
exec 3<"$area" 4<"$runtime"
rearea= reruntime= j=0
while [ "$j" -lt "$m" ]; do
  d=$1
  shift
  if [ -d "$d" ] && [ ! -h "$d" ]; then
    "$mnt" -c --bind "$d" "$d"
    "$mnt" -c -o remount,bind,ro "$d"
    case "$area/" in "$d"/*) rearea=1 ;; esac
    case "$runtime/" in "$d"/*) reruntime=1 ;; esac
  fi
  j=$((j + 1))
done
n=$1
shift
stage= own= i=0
while [ "$i" -lt "$n" ]; do
  d=$1
  shift
  if [ -d "$d" ] && [ ! -h "$d" ]; then
    if [ -z "$stage" ]; then
      "$mnt" -t tmpfs -o "nosuid,nodev,mode=0700,size=$size" gatehouse-private "$d"
      stage=$d own=$i
    fi
    "$mk" -m 1777 "$stage/$i"
    if [ "$d" != "$stage" ]; then "$mnt" -c --bind "$stage/$i" "$d"; fi
  fi
  i=$((i + 1))
done
if [ -n "$stage" ]; then "$mnt" -c --bind "$stage/$own" "$stage"; fi
if [ -d /dev/mqueue ] && [ ! -h /dev/mqueue ]; then "$mnt" -t mqueue -o nosuid,nodev,noexec mqueue /dev/mqueue; fi
mask=$(umask)
umask 066
if [ -n "$rearea" ] || [ ! -d "$area" ]; then "$mk" -p "$area"; "$mnt" -c --bind /proc/self/fd/3 "$area"; fi
if [ -n "$reruntime" ] || [ ! -d "$runtime" ]; then "$mk" -p "$runtime"; "$mnt" -c --bind /proc/self/fd/4 "$runtime"; fi
umask "$mask"
exec 3<&- 4<&-
exec "$@"`;

/**
 * The command prefix that puts a task in namespaces of its own (run as root; the task's command,
 * starting with the setpriv that drops root, follows it). `--kill-child` and the pid namespace end
 * every process of the task when it or unshare dies; the mount namespace holds the one private
 * tmpfs (`tmpfsBytes` for all the covered folders together) and a /proc that lists the task's own
 * processes only. `folders` are made private besides PRIVATE_TMP (Isolation.privateFolders),
 * `readOnly` read-only (Isolation.readOnlyFolders).
 */
export function namespaceArgs(
  tools: NamespaceTools,
  o: { tmpfsBytes: number; area: string; runtime: string; folders: readonly string[]; readOnly: readonly string[] },
): string[] {
  const folders = [...PRIVATE_TMP, ...o.folders.filter((f) => !PRIVATE_TMP.includes(f))];
  return [
    tools.unshare, '--net', '--ipc', '--uts', '--pid', '--fork', '--kill-child', '--mount-proc', '--',
    tools.sh, '-c', NAMESPACE_SETUP, 'gatehouse-task', tools.mount, tools.mkdir, String(o.tmpfsBytes), o.area, o.runtime,
    String(o.readOnly.length), ...o.readOnly, String(folders.length), ...folders,
  ];
}

/** Runs a check inside the namespaces a task would get, as a task uid: null when they all work, else why not. */
export async function namespaceProblem(tools: NamespaceTools, setpriv: string, uid: number, folders: readonly string[], readOnly: readonly string[]): Promise<string | null> {
  // Pid 1 of its own pid namespace, no network interface but its loopback, a /tmp that is not the host's.
  // Unguessable names, the host's created exclusively (never through a link someone put in /tmp).
  const name = `/tmp/.gatehouse-probe-${randomBytes(12).toString('hex')}`;
  const hostMark = `${name}-host`;
  const taskMark = `${name}-task`;
  const check = `test "$$" = 1 && test "$(grep -c : /proc/net/dev)" = 1 && test ! -e ${hostMark} && : > ${taskMark}`;
  await writeFile(hostMark, '', { mode: 0o600, flag: 'wx' });
  try {
    const ran = await run(setpriv, [
      '--pdeathsig', 'KILL', '--',
      ...namespaceArgs(tools, { tmpfsBytes: 1024 * 1024, area: '/', runtime: '/', folders, readOnly }),
      setpriv, '--reuid', String(uid), '--regid', String(uid), '--clear-groups', '--no-new-privs', '--', '/bin/sh', '-c', check,
    ]);
    if (await access(taskMark).then(() => true, () => false)) return 'a task wrote into the host /tmp: its private tmpfs was not mounted';
    if (ran.code !== 0) return ran.output || `exit ${ran.code}: not pid 1 of its own pid namespace, a network interface besides lo, or the host /tmp`;
    return null;
  } finally {
    await rm(hostMark, { force: true });
    await rm(taskMark, { force: true });
  }
}

export async function namespaceTools(unsharePath: string | undefined): Promise<NamespaceTools | string> {
  const unshare = unsharePath ?? (await findTool('unshare'));
  if (!unshare || !(await executable(unshare))) return `util-linux's unshare not found (${unsharePath ?? SYSTEM_BIN.map((d) => `${d}/unshare`).join(', ')})`;
  const mount = await findTool('mount');
  const mkdir = await findTool('mkdir');
  const sh = await findTool('sh');
  if (!mount || !mkdir || !sh) return `${!mount ? 'mount' : !mkdir ? 'mkdir' : 'sh'} not found in ${SYSTEM_BIN.join(', ')}`;
  return { unshare, mount, mkdir, sh };
}
