// The console's files: every file under console/ in the repository, listed once at start-up. A request
// names one of them or gets a 404, so no path a browser sends is ever joined onto the disk.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.png': 'image/png',
};

export interface ConsoleFile {
  type: string;
  body: Buffer;
}

/** name (console/-relative, with /) → its type and bytes; files of other types are left out. */
export function readConsoleFiles(dir: string): Map<string, ConsoleFile> {
  const files = new Map<string, ConsoleFile>();
  const walk = (at: string) => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile() && TYPES[extname(entry.name)] && statSync(path).size < 1024 * 1024) {
        files.set(relative(dir, path).split(sep).join('/'), { type: TYPES[extname(entry.name)]!, body: readFileSync(path) });
      }
    }
  };
  walk(dir);
  return files;
}
