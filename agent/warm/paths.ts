// Path safety for file warming: which files below a requested path Stoker may read.
//
// Every path and every file below it must really lie inside one of the allowed roots:
// - a requested path must be absolute and free of `..`; its real path (symlinks resolved)
//   must be inside an allowed root, else PATH_OUTSIDE_ROOT naming the path;
// - below it, a symlink is followed only when its target stays inside an allowed root;
//   targets outside, dangling links and loops become issues, and the walk goes on;
// - FIFOs, sockets and devices are reported and never opened;
// - each file is recorded with the device and inode that were checked, so the reader can
//   verify that what it opened is what was checked (readers.ts).
import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { isAbsolute, join, normalize } from 'node:path';
import picomatch from 'picomatch';
import type { StokerErrorCode } from '../../proto/errors.js';

/** A refusal or failure that names the path it is about. */
export class PathError extends Error {
  constructor(
    readonly code: StokerErrorCode,
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = 'PathError';
  }
}

/** One regular file to read. */
export interface FileEntry {
  /** The real path (no symlinks) that will be opened. */
  real: string;
  /** The path as the caller sees it: the requested path joined with the names below it. */
  shown: string;
  size: number;
  dev: number;
  ino: number;
}

/** A file skipped or failed below a requested path; the rest of the tree still counts. */
export interface Issue {
  path: string;
  code: StokerErrorCode;
  message: string;
}

export interface PathSpec {
  path: string;
  include?: readonly string[] | undefined;
  exclude?: readonly string[] | undefined;
}

export interface Tree {
  /** The requested path, as given. */
  path: string;
  /** Its real path. */
  real: string;
  files: FileEntry[];
  bytes: number;
  issues: Issue[];
}

/** Resolves the allowed roots to real, absolute directories; throws a PathError naming a bad one. */
export async function resolveRoots(roots: readonly string[]): Promise<string[]> {
  if (roots.length === 0) throw new PathError('INVALID_REQUEST', '', 'no allowed root is configured: every path is refused');
  const out: string[] = [];
  for (const root of roots) {
    if (!isAbsolute(root)) throw new PathError('INVALID_REQUEST', root, `allowed root "${root}" is not an absolute path`);
    let real: string;
    try {
      real = await realpath(root);
    } catch (err) {
      throw new PathError('INVALID_REQUEST', root, `allowed root "${root}" cannot be resolved: ${errnoText(err)}`);
    }
    if (!(await stat(real)).isDirectory()) throw new PathError('INVALID_REQUEST', root, `allowed root "${root}" is not a directory`);
    out.push(real);
  }
  return out;
}

/** True when `child` is `root` or lies below it (both real, normalised paths). */
export function isInside(child: string, root: string): boolean {
  if (root === '/') return child.startsWith('/');
  return child === root || child.startsWith(`${root}/`);
}

function insideAny(child: string, roots: readonly string[]): boolean {
  return roots.some((r) => isInside(child, r));
}

/** Builds the include/exclude matcher for one path; globs match paths relative to the requested path. */
export function compileFilter(spec: PathSpec): (rel: string, isDir: boolean) => boolean {
  const include = [...(spec.include ?? [])];
  const exclude = [...(spec.exclude ?? [])];
  for (const g of [...include, ...exclude]) {
    if (g.trim() === '') throw new PathError('INVALID_REQUEST', spec.path, `an empty glob was given for "${spec.path}"`);
    if (g.startsWith('/')) {
      throw new PathError('INVALID_REQUEST', spec.path, `glob "${g}" for "${spec.path}" is absolute; globs match paths relative to the requested path`);
    }
  }
  let inc: Matcher | undefined;
  let exc: Matcher | undefined;
  try {
    inc = include.length ? matcher(include) : undefined;
    exc = exclude.length ? matcher(exclude) : undefined;
  } catch (err) {
    throw new PathError('INVALID_REQUEST', spec.path, `bad glob for "${spec.path}": ${(err as Error).message}`);
  }
  return (rel, isDir) => {
    if (exc?.(rel)) return false;
    if (isDir || !inc) return true;
    return inc(rel);
  };
}

type Matcher = (rel: string) => boolean;

/** A glob without a slash matches a name at any depth ("*.bin"); one with a slash matches the relative path. */
function matcher(globs: readonly string[]): Matcher {
  const names = globs.filter((g) => !g.includes('/'));
  const paths = globs.filter((g) => g.includes('/'));
  const byName = names.length ? picomatch(names, { dot: true, basename: true }) : undefined;
  const byPath = paths.length ? picomatch(paths, { dot: true }) : undefined;
  return (rel) => (byName?.(rel) ?? false) || (byPath?.(rel) ?? false);
}

/**
 * Checks one requested path against the roots and returns its real path.
 * Throws a PathError naming the path when it is refused or missing.
 */
export async function checkRequestedPath(path: string, roots: readonly string[]): Promise<string> {
  if (path === '') throw new PathError('INVALID_REQUEST', path, 'an empty path was given');
  if (path.includes('\0')) throw new PathError('INVALID_REQUEST', path, `path "${path}" contains a NUL byte`);
  if (!isAbsolute(path)) throw new PathError('INVALID_REQUEST', path, `path "${path}" is not absolute`);
  if (path.split('/').includes('..')) {
    throw new PathError('PATH_OUTSIDE_ROOT', path, `path "${path}" contains "..": refused`);
  }
  let real: string;
  try {
    real = await realpath(path);
  } catch (err) {
    const code = errnoCode(err);
    // Name the refusal before the absence: a missing path outside the roots is still outside.
    if (!insideAny(normalize(path), roots)) throw outside(path, roots);
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new PathError('PATH_NOT_FOUND', path, `path "${path}" does not exist`);
    if (code === 'ELOOP') throw new PathError('READ_FAILED', path, `path "${path}" is a symlink loop`);
    throw new PathError('READ_FAILED', path, `path "${path}" cannot be resolved: ${errnoText(err)}`);
  }
  if (!insideAny(real, roots)) {
    if (real !== normalize(path)) {
      throw new PathError('PATH_OUTSIDE_ROOT', path, `path "${path}" resolves to "${real}", outside the allowed roots (${roots.join(', ')})`);
    }
    throw outside(path, roots);
  }
  return real;
}

function outside(path: string, roots: readonly string[]): PathError {
  return new PathError('PATH_OUTSIDE_ROOT', path, `path "${path}" is outside the allowed roots (${roots.join(', ')})`);
}

const STAT_BATCH = 256;

/**
 * Lists the regular files below one requested path that pass its filters, following symlinks
 * that stay inside the roots. Throws a PathError when the requested path itself is refused.
 */
export async function walkTree(spec: PathSpec, roots: readonly string[], signal: AbortSignal): Promise<Tree> {
  const filter = compileFilter(spec);
  const real = await checkRequestedPath(spec.path, roots);
  const tree: Tree = { path: spec.path, real, files: [], bytes: 0, issues: [] };
  const seenFiles = new Set<string>();
  const seenDirs = new Set<string>();

  const addFile = (realPath: string, shown: string, st: Stats): void => {
    const key = `${st.dev}:${st.ino}`;
    if (seenFiles.has(key)) return; // the same file reached twice (hard link or two symlinks): read once
    seenFiles.add(key);
    tree.files.push({ real: realPath, shown, size: st.size, dev: st.dev, ino: st.ino });
    tree.bytes += st.size;
  };
  const special = (shown: string, st: Stats): void => {
    tree.issues.push({ path: shown, code: 'READ_FAILED', message: `"${shown}" is a ${kindOf(st)}, not a regular file: skipped, never opened` });
  };

  const top = await stat(real);
  if (top.isFile()) {
    // A single file: filters match its name.
    if (filter(lastName(spec.path), false)) addFile(real, spec.path, top);
    return tree;
  }
  if (!top.isDirectory()) {
    special(spec.path, top);
    return tree;
  }

  const visit = async (dirReal: string, dirShown: string, dirRel: string, ancestors: ReadonlySet<string>, st: Stats): Promise<void> => {
    signal.throwIfAborted();
    const key = `${st.dev}:${st.ino}`;
    seenDirs.add(key);
    const here = new Set(ancestors).add(key);
    let names: string[];
    try {
      names = (await readdir(dirReal)).sort();
    } catch (err) {
      tree.issues.push({ path: dirShown, code: 'READ_FAILED', message: `directory "${dirShown}" cannot be listed: ${errnoText(err)}` });
      return;
    }
    const subdirs: [string, string, string, Stats][] = [];
    for (let i = 0; i < names.length; i += STAT_BATCH) {
      const batch = names.slice(i, i + STAT_BATCH);
      const found = await Promise.all(batch.map((name) => classify(join(dirReal, name), join(dirShown, name), dirRel ? `${dirRel}/${name}` : name)));
      for (const f of found) {
        if (!f) continue;
        const [entryReal, shown, rel, est] = f;
        if (est.isDirectory()) {
          if (!filter(rel, true)) continue;
          const dkey = `${est.dev}:${est.ino}`;
          if (here.has(dkey)) {
            tree.issues.push({ path: shown, code: 'READ_FAILED', message: `symlink loop: "${shown}" leads back to a directory above it; not followed` });
          } else if (!seenDirs.has(dkey)) {
            subdirs.push([entryReal, shown, rel, est]);
          }
        } else if (est.isFile()) {
          if (filter(rel, false)) addFile(entryReal, shown, est);
        } else if (filter(rel, false)) {
          special(shown, est);
        }
      }
    }
    for (const [r, s, rel, dst] of subdirs) {
      const dkey = `${dst.dev}:${dst.ino}`;
      if (!seenDirs.has(dkey)) await visit(r, s, rel, here, dst);
    }
  };

  // Returns [real path, shown path, relative path, stats of what it really is], or undefined
  // after recording an issue (or when the entry vanished during the walk).
  const classify = async (entryPath: string, shown: string, rel: string): Promise<[string, string, string, Stats] | undefined> => {
    let st: Stats;
    try {
      st = await lstat(entryPath);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined; // gone before it was listed fully: nothing to warm
      tree.issues.push({ path: shown, code: 'READ_FAILED', message: `"${shown}" cannot be examined: ${errnoText(err)}` });
      return undefined;
    }
    if (!st.isSymbolicLink()) return [entryPath, shown, rel, st];
    let target: string;
    try {
      target = await realpath(entryPath);
    } catch (err) {
      const code = errnoCode(err);
      if (!filter(rel, false)) return undefined;
      if (code === 'ELOOP') {
        tree.issues.push({ path: shown, code: 'READ_FAILED', message: `symlink loop at "${shown}": not followed` });
      } else if (code === 'ENOENT' || code === 'ENOTDIR') {
        tree.issues.push({ path: shown, code: 'PATH_NOT_FOUND', message: `symlink "${shown}" points to a path that does not exist` });
      } else {
        tree.issues.push({ path: shown, code: 'READ_FAILED', message: `symlink "${shown}" cannot be resolved: ${errnoText(err)}` });
      }
      return undefined;
    }
    if (!insideAny(target, roots)) {
      if (filter(rel, false)) {
        tree.issues.push({
          path: shown,
          code: 'PATH_OUTSIDE_ROOT',
          message: `symlink "${shown}" points to "${target}", outside the allowed roots (${roots.join(', ')}): refused`,
        });
      }
      return undefined;
    }
    try {
      st = await lstat(target);
    } catch (err) {
      tree.issues.push({ path: shown, code: 'READ_FAILED', message: `symlink "${shown}" target "${target}" cannot be examined: ${errnoText(err)}` });
      return undefined;
    }
    return [target, shown, rel, st];
  };

  await visit(real, spec.path, '', new Set(), top);
  return tree;
}

function lastName(p: string): string {
  const parts = p.split('/').filter(Boolean);
  return parts[parts.length - 1] ?? p;
}

function kindOf(st: Stats): string {
  if (st.isFIFO()) return 'FIFO';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  if (st.isSymbolicLink()) return 'symlink';
  return 'special file';
}

export function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

/** The errno name and its meaning, without the path Node puts in its messages. */
export function errnoText(err: unknown): string {
  const code = errnoCode(err);
  const known: Record<string, string> = {
    ENOENT: 'no such file or directory',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    ELOOP: 'too many levels of symbolic links',
    ENOTDIR: 'not a directory',
    EIO: 'input/output error',
    ENOTCONN: 'transport endpoint is not connected',
  };
  if (code && known[code]) return `${code} (${known[code]})`;
  return code ?? (err instanceof Error ? err.message : String(err));
}
