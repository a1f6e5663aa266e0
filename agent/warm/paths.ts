// Path safety for file warming: which files below a requested path Stoker may read.
//
// Every path and every file below it must really lie inside one of the allowed roots:
// - a requested path must be absolute and free of `..`; its real path (symlinks resolved)
//   must be inside an allowed root, else PATH_OUTSIDE_ROOT naming the path;
// - it must be a directory or a regular file: a FIFO, socket or device given as the path itself
//   is READ_FAILED naming it, never opened;
// - below it, a symlink is followed only when its target stays inside an allowed root;
//   targets outside, dangling links and loops become issues, and the walk goes on;
// - FIFOs, sockets and devices below it are reported and never opened;
// - each file is recorded with the device and inode that were checked, so the reader can
//   verify that what it opened is what was checked (readers.ts).
//
// The walk works on descriptors, not paths (beneath.ts): every directory is opened from its
// root's descriptor one component at a time without following a symlink, listed through its own
// descriptor, and its entries examined relative to it. A directory swapped for a symlink during
// the walk therefore leads nowhere: the open of the swapped component fails (reported as an
// issue), and nothing already listed came from outside. Where a symlink is followed, its target
// is resolved as a path only to propose where it leads; the proposal must be inside a root and
// is then opened the same way, so a proposal that a race made wrong still cannot leave the root.
// Each file is recorded as its root and a relative path free of symlinks, which the readers
// open the same way.
import { realpath, stat } from 'node:fs/promises';
import fs from 'node:fs';
import { isAbsolute, join, normalize } from 'node:path';
import picomatch from 'picomatch';
import type { StokerErrorCode } from '../../proto/errors.js';
import { ErrnoError, entryStat, statBeneath, type Beneath, type EntryKind, type EntryStat } from './beneath.js';

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

/** An allowed root: its real path and a descriptor of it, from which everything below is opened. */
export interface Root {
  readonly path: string;
  readonly fd: number;
}

/** One regular file to read. */
export interface FileEntry {
  /** The allowed root it lies in. */
  root: Root;
  /** Its path relative to the root, without symlinks: what the reader opens below root.fd. */
  rel: string;
  /** The real path (the root's path joined with rel), for messages and measurements. */
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

/** Opens a descriptor of each (resolved, real) allowed root; close them with closeRoots. */
export async function openRoots(realRoots: readonly string[]): Promise<Root[]> {
  const out: Root[] = [];
  try {
    for (const path of realRoots) {
      const fd = await new Promise<number>((resolve, reject) =>
        fs.open(path, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY, (err, n) => (err ? reject(err) : resolve(n))),
      ).catch((err: unknown) => {
        throw new PathError('INVALID_REQUEST', path, `allowed root "${path}" cannot be opened: ${errnoText(err)}`);
      });
      out.push({ path, fd });
    }
    return out;
  } catch (err) {
    closeRoots(out);
    throw err;
  }
}

export function closeRoots(roots: readonly Root[]): void {
  for (const r of roots) fs.close(r.fd, () => undefined);
}

/** The root a real path lies in (the longest that holds it) and the path relative to it. */
export function locate(real: string, roots: readonly Root[]): { root: Root; rel: string } | undefined {
  let best: Root | undefined;
  for (const r of roots) if (isInside(real, r.path) && (!best || r.path.length > best.path.length)) best = r;
  if (!best) return undefined;
  const rel = real === best.path ? '' : real.slice(best.path === '/' ? 1 : best.path.length + 1);
  return { root: best, rel };
}

function closeFd(fd: number): Promise<void> {
  return new Promise((resolve) => fs.close(fd, () => resolve()));
}
function fstatFd(fd: number): Promise<EntryStat> {
  return new Promise((resolve, reject) => fs.fstat(fd, (err, st) => (err ? reject(err) : resolve(entryStat(st)))));
}

function isSwap(err: unknown): boolean {
  const code = errnoCode(err);
  return code === 'ELOOP' || code === 'ENOTDIR';
}

interface Place {
  root: Root;
  rel: string;
}

const RESOLVE_BATCH = 256;

/**
 * Lists the regular files below one requested path that pass its filters, following symlinks
 * that stay inside the roots. Throws a PathError when the requested path itself is refused.
 */
export async function walkTree(spec: PathSpec, roots: readonly Root[], signal: AbortSignal, beneath: Beneath): Promise<Tree> {
  const filter = compileFilter(spec);
  const rootPaths = roots.map((r) => r.path);
  const real = await checkRequestedPath(spec.path, rootPaths);
  const tree: Tree = { path: spec.path, real, files: [], bytes: 0, issues: [] };
  const seenFiles = new Set<string>();
  const seenDirs = new Set<string>();

  const addFile = (at: Place, shown: string, st: EntryStat): void => {
    const key = `${st.dev}:${st.ino}`;
    if (seenFiles.has(key)) return; // the same file reached twice (hard link or two symlinks): read once
    seenFiles.add(key);
    tree.files.push({ root: at.root, rel: at.rel, real: join(at.root.path, at.rel), shown, size: st.size, dev: st.dev, ino: st.ino });
    tree.bytes += st.size;
  };
  const special = (shown: string, kind: EntryKind): void => {
    tree.issues.push({ path: shown, code: 'READ_FAILED', message: `"${shown}" is a ${kind}, not a regular file: skipped, never opened` });
  };

  // The requested path itself, examined below its root without following any symlink: what
  // realpath proposed may have changed since.
  const top = locate(real, roots);
  if (!top) throw outside(spec.path, rootPaths);
  let st: EntryStat;
  try {
    st = await statBeneath(beneath, top.root.fd, top.rel);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw new PathError('PATH_NOT_FOUND', spec.path, `path "${spec.path}" does not exist`);
    if (isSwap(err)) {
      throw new PathError('PATH_OUTSIDE_ROOT', spec.path, `path "${spec.path}" changed while it was checked (a part of "${real}" is now a symlink): refused`);
    }
    throw new PathError('READ_FAILED', spec.path, `path "${spec.path}" cannot be examined: ${errnoText(err)}`);
  }
  if (st.kind === 'file') {
    // A single file: filters match its name.
    if (filter(lastName(spec.path), false)) addFile(top, spec.path, st);
    return tree;
  }
  if (st.kind === 'symlink') {
    throw new PathError('PATH_OUTSIDE_ROOT', spec.path, `path "${spec.path}" changed while it was checked ("${real}" is now a symlink): refused`);
  }
  if (st.kind !== 'dir') {
    throw new PathError('READ_FAILED', spec.path, `path "${spec.path}" is a ${st.kind}, not a regular file or a directory: not read`);
  }

  const visit = async (at: Place, dirShown: string, dirRel: string, ancestors: ReadonlySet<string>, dst: EntryStat): Promise<void> => {
    signal.throwIfAborted();
    const key = `${dst.dev}:${dst.ino}`;
    seenDirs.add(key);
    const here = new Set(ancestors).add(key);
    let names: string[];
    let stats: (EntryStat | ErrnoError)[];
    let fd: number;
    try {
      fd = await beneath.openDir(at.root.fd, at.rel);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return; // gone since it was listed: nothing to warm
      const message = isSwap(err)
        ? `directory "${dirShown}" was replaced by a symlink during the walk: not followed`
        : `directory "${dirShown}" cannot be opened: ${errnoText(err)}`;
      tree.issues.push({ path: dirShown, code: isSwap(err) ? 'PATH_OUTSIDE_ROOT' : 'READ_FAILED', message });
      return;
    }
    try {
      const opened = await fstatFd(fd);
      if (opened.dev !== dst.dev || opened.ino !== dst.ino) {
        tree.issues.push({ path: dirShown, code: 'READ_FAILED', message: `directory "${dirShown}" was replaced during the walk: skipped` });
        return;
      }
      names = await beneath.list(fd);
      stats = await beneath.statAt(fd, names);
    } catch (err) {
      tree.issues.push({ path: dirShown, code: 'READ_FAILED', message: `directory "${dirShown}" cannot be listed: ${errnoText(err)}` });
      return;
    } finally {
      await closeFd(fd);
    }
    const subdirs: [Place, string, string, EntryStat][] = [];
    // Symlinks are resolved a batch at a time (over a network filesystem each is round trips).
    const found: ([Place, EntryStat, string, string] | undefined)[] = [];
    for (let i = 0; i < names.length; i += RESOLVE_BATCH) {
      const batch = names.slice(i, i + RESOLVE_BATCH).map(async (name, j): Promise<[Place, EntryStat, string, string] | undefined> => {
        const shown = join(dirShown, name);
        const rel = dirRel ? `${dirRel}/${name}` : name;
        const got = await classify({ root: at.root, rel: at.rel ? `${at.rel}/${name}` : name }, shown, rel, stats[i + j]);
        return got && [got[0], got[1], shown, rel];
      });
      found.push(...(await Promise.all(batch)));
    }
    for (const f of found) {
      if (!f) continue;
      const [entryAt, est, shown, rel] = f;
      if (est.kind === 'dir') {
        if (!filter(rel, true)) continue;
        const dkey = `${est.dev}:${est.ino}`;
        if (here.has(dkey)) {
          tree.issues.push({ path: shown, code: 'READ_FAILED', message: `symlink loop: "${shown}" leads back to a directory above it; not followed` });
        } else if (!seenDirs.has(dkey)) {
          subdirs.push([entryAt, shown, rel, est]);
        }
      } else if (est.kind === 'file') {
        if (filter(rel, false)) addFile(entryAt, shown, est);
      } else if (filter(rel, false)) {
        special(shown, est.kind);
      }
    }
    for (const [p, s, rel, sst] of subdirs) {
      if (!seenDirs.has(`${sst.dev}:${sst.ino}`)) await visit(p, s, rel, here, sst);
    }
  };

  // Returns where an entry really is and what it is (a symlink's target, checked), or undefined
  // after recording an issue (or when the entry vanished during the walk).
  const classify = async (at: Place, shown: string, rel: string, listed: EntryStat | ErrnoError | undefined): Promise<[Place, EntryStat] | undefined> => {
    if (!listed || listed instanceof ErrnoError) {
      if (!listed || listed.code === 'ENOENT') return undefined; // gone before it was listed fully: nothing to warm
      tree.issues.push({ path: shown, code: 'READ_FAILED', message: `"${shown}" cannot be examined: ${errnoText(listed)}` });
      return undefined;
    }
    if (listed.kind !== 'symlink') return [at, listed];
    // Where the link leads, proposed by resolving it as a path; checked below.
    let target: string;
    try {
      target = await realpath(join(at.root.path, at.rel));
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
    const to = locate(target, roots);
    if (!to) {
      if (filter(rel, false)) {
        tree.issues.push({
          path: shown,
          code: 'PATH_OUTSIDE_ROOT',
          message: `symlink "${shown}" points to "${target}", outside the allowed roots (${rootPaths.join(', ')}): refused`,
        });
      }
      return undefined;
    }
    let st: EntryStat;
    try {
      st = await statBeneath(beneath, to.root.fd, to.rel);
    } catch (err) {
      const why = isSwap(err) ? 'changed during the walk (a part of it is now a symlink)' : `cannot be examined: ${errnoText(err)}`;
      tree.issues.push({ path: shown, code: isSwap(err) ? 'PATH_OUTSIDE_ROOT' : 'READ_FAILED', message: `symlink "${shown}" target "${target}" ${why}` });
      return undefined;
    }
    if (st.kind === 'symlink') {
      tree.issues.push({ path: shown, code: 'PATH_OUTSIDE_ROOT', message: `symlink "${shown}" target "${target}" changed during the walk (it is now a symlink): not followed` });
      return undefined;
    }
    return [to, st];
  };

  await visit(top, spec.path, '', new Set(), st);
  return tree;
}

function lastName(p: string): string {
  const parts = p.split('/').filter(Boolean);
  return parts[parts.length - 1] ?? p;
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
