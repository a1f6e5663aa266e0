// Stoker's optional native helper for file warming, on Node-API (stable across Node versions).
//
// Residency (page cache), synchronous:
//   residentBytes(fd, size) -> number   bytes of the open file in the page cache (mmap + mincore), -1 if unknown
//   residentBytesBeneath(dirFd, rels) -> number   the sum over regular files below a directory, -1 if any is unknown
// It takes a descriptor the reader already opened and checked, so measuring residency costs no
// extra open (fincore opens every file again, which over a network filesystem is a round trip).
//
// Opening below a directory without following any symlink (Node has no openat), asynchronous on
// libuv's thread pool; each returns a Promise that rejects with a number, the errno:
//   openBeneath(dirFd, rel, flags) -> Promise<fd>   every component of `rel` opened relative to
//       the one before with O_NOFOLLOW (directories with O_PATH|O_DIRECTORY), so no component
//       can be a symlink, and none can be swapped for one after it was opened; "", "." and ".."
//       components are refused (EINVAL). rel "" opens the directory itself.
//   listDir(dirFd) -> Promise<string[]>   the names in an open directory (fdopendir on a new
//       descriptor of it), without "." and ".."
//   statAt(dirFd, names) -> Promise<[kind, dev, ino, size, errno][]>   fstatat(AT_SYMLINK_NOFOLLOW)
//       of each name in the directory; kind is one of f d l p s c b ? (regular file, directory,
//       symlink, FIFO, socket, character device, block device, other), or "" with errno set.
//
// Letting go of the page cache, synchronous:
//   dropCache(fd) -> number   posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) on an open file: its
//       clean pages leave the page cache; 0 or the errno (Node has no fadvise)
//   O_PATH   the flag's value on this platform, for openBeneath of a directory that is only walked.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <node_api.h>

static int get_i64(napi_env env, napi_value v, int64_t *out) {
  return napi_get_value_int64(env, v, out) == napi_ok;
}

static napi_value make_number(napi_env env, double d) {
  napi_value out;
  napi_create_double(env, d, &out);
  return out;
}

// A string argument as a new C string (NULL when it is not a string); the caller frees it.
static char *get_string(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (!s) return NULL;
  if (napi_get_value_string_utf8(env, v, s, len + 1, &len) != napi_ok) {
    free(s);
    return NULL;
  }
  return s;
}

// Opens `rel` below `dirfd`, one component at a time, never following a symlink: every
// directory on the way with O_PATH|O_DIRECTORY|O_NOFOLLOW, the last with `flags|O_NOFOLLOW`.
// Returns the descriptor, or -1 with errno set (ELOOP or ENOTDIR where a component is a symlink).
static int open_beneath(int dirfd, const char *rel, int flags) {
  flags |= O_NOFOLLOW | O_CLOEXEC;
  if (rel[0] == '\0') return openat(dirfd, ".", flags);
  if (rel[0] == '/') {
    errno = EINVAL;
    return -1;
  }
  char part[NAME_MAX + 1];
  int cur = dirfd;
  const char *p = rel;
  for (;;) {
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    if (len == 0 || len > NAME_MAX || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) {
      if (cur != dirfd) close(cur);
      errno = len > NAME_MAX ? ENAMETOOLONG : EINVAL;
      return -1;
    }
    memcpy(part, p, len);
    part[len] = '\0';
    int next = openat(cur, part, slash ? (O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : flags);
    int saved = errno;
    if (cur != dirfd) close(cur);
    if (next < 0) {
      errno = saved;
      return -1;
    }
    if (!slash) return next;
    cur = next;
    p = slash + 1;
  }
}

// Resident bytes of an open file of `size` bytes, counted in windows of at most 1 GiB so the
// vector stays small for huge files; -1 when it cannot be measured. `vec` holds a window's pages.
static int64_t resident_of_fd(int fd, int64_t size, unsigned char *vec, long page) {
  const int64_t window = (int64_t)1 << 30;
  int64_t resident = 0;
  for (int64_t off = 0; off < size; off += window) {
    size_t len = (size_t)(size - off < window ? size - off : window);
    void *addr = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)off);
    if (addr == MAP_FAILED) return -1;
    size_t pages = (len + (size_t)page - 1) / (size_t)page;
    int rc = mincore(addr, len, vec);
    munmap(addr, len);
    if (rc != 0) return -1;
    for (size_t i = 0; i < pages; i++) {
      if (vec[i] & 1) resident += (i == pages - 1 && (int64_t)((i + 1) * (size_t)page) > (int64_t)len) ? (int64_t)(len - i * (size_t)page) : page;
    }
  }
  return resident;
}

static unsigned char *window_vector(long page) {
  return malloc((size_t)((((int64_t)1 << 30) / page) + 1));
}

static napi_value resident_bytes(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int64_t fd, size;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || !get_i64(env, argv[0], &fd) ||
      !get_i64(env, argv[1], &size) || fd < 0 || size < 0) {
    napi_throw_type_error(env, NULL, "residentBytes(fd, size) needs a descriptor and a size");
    return NULL;
  }
  if (size == 0) return make_number(env, 0);
  long page = sysconf(_SC_PAGESIZE);
  unsigned char *vec = window_vector(page);
  if (!vec) return make_number(env, -1);
  int64_t resident = resident_of_fd((int)fd, size, vec, page);
  free(vec);
  return make_number(env, (double)resident);
}

// One pass over many files without a process per batch (fincore) or a round trip to JavaScript
// per file. Each is opened below `dirFd` as openBeneath does (no symlink anywhere on the way) and
// without blocking (a FIFO swapped in is never waited on), and must be a regular file; anything
// else makes the sum unknown.
static napi_value resident_bytes_beneath(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int64_t dirfd;
  bool is_array = false;
  uint32_t n = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || !get_i64(env, argv[0], &dirfd) || dirfd < 0 ||
      napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[1], &n) != napi_ok) {
    napi_throw_type_error(env, NULL, "residentBytesBeneath(dirFd, rels) needs a directory descriptor and an array of relative paths");
    return NULL;
  }
  long page = sysconf(_SC_PAGESIZE);
  unsigned char *vec = window_vector(page);
  if (!vec) return make_number(env, -1);
  char rel[PATH_MAX];
  int64_t total = 0;
  for (uint32_t i = 0; i < n && total >= 0; i++) {
    napi_value item;
    size_t len = 0;
    if (napi_get_element(env, argv[1], i, &item) != napi_ok ||
        napi_get_value_string_utf8(env, item, rel, sizeof(rel), &len) != napi_ok || len >= sizeof(rel) - 1) {
      total = -1;
      break;
    }
    int fd = open_beneath((int)dirfd, rel, O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
      total = -1;
      break;
    }
    struct stat st;
    int64_t got = -1;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) got = st.st_size == 0 ? 0 : resident_of_fd(fd, (int64_t)st.st_size, vec, page);
    close(fd);
    total = got < 0 ? -1 : total + got;
  }
  free(vec);
  return make_number(env, (double)total);
}

// ---- asynchronous calls: the work runs on libuv's thread pool, the result settles a Promise ----

enum job_kind { JOB_OPEN, JOB_LIST, JOB_STAT };

struct stat_row {
  char kind;
  int err;
  struct stat st;
};

struct job {
  enum job_kind kind;
  napi_async_work work;
  napi_deferred deferred;
  int dirfd;
  int flags;
  char *rel;      // JOB_OPEN
  int fd;         // JOB_OPEN: the result
  char **names;   // JOB_LIST: the result; JOB_STAT: the input
  size_t count;
  size_t cap;
  struct stat_row *rows;  // JOB_STAT: the result
  int err;        // errno of a failure of the whole call
};

static void free_job(struct job *j) {
  free(j->rel);
  for (size_t i = 0; i < j->count; i++) free(j->names ? j->names[i] : NULL);
  free(j->names);
  free(j->rows);
  free(j);
}

static char kind_of(mode_t mode) {
  if (S_ISREG(mode)) return 'f';
  if (S_ISDIR(mode)) return 'd';
  if (S_ISLNK(mode)) return 'l';
  if (S_ISFIFO(mode)) return 'p';
  if (S_ISSOCK(mode)) return 's';
  if (S_ISCHR(mode)) return 'c';
  if (S_ISBLK(mode)) return 'b';
  return '?';
}

static int push_name(struct job *j, const char *name) {
  if (j->count == j->cap) {
    size_t cap = j->cap ? j->cap * 2 : 64;
    char **grown = realloc(j->names, cap * sizeof(char *));
    if (!grown) return -1;
    j->names = grown;
    j->cap = cap;
  }
  char *copy = strdup(name);
  if (!copy) return -1;
  j->names[j->count++] = copy;
  return 0;
}

static void execute(napi_env env, void *data) {
  (void)env;
  struct job *j = data;
  switch (j->kind) {
    case JOB_OPEN:
      j->fd = open_beneath(j->dirfd, j->rel, j->flags);
      if (j->fd < 0) j->err = errno;
      break;
    case JOB_LIST: {
      // A descriptor of its own for the stream (the caller's may be O_PATH, and closedir closes it).
      int fd = openat(j->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      DIR *d = fd < 0 ? NULL : fdopendir(fd);
      if (!d) {
        j->err = errno;
        if (fd >= 0) close(fd);
        break;
      }
      for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
          if (errno) j->err = errno;
          break;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (push_name(j, e->d_name) != 0) {
          j->err = ENOMEM;
          break;
        }
      }
      closedir(d);
      break;
    }
    case JOB_STAT:
      for (size_t i = 0; i < j->count; i++) {
        struct stat_row *r = &j->rows[i];
        if (fstatat(j->dirfd, j->names[i], &r->st, AT_SYMLINK_NOFOLLOW) == 0) {
          r->kind = kind_of(r->st.st_mode);
        } else {
          r->kind = 0;
          r->err = errno;
        }
      }
      break;
  }
}

static void complete(napi_env env, napi_status status, void *data) {
  struct job *j = data;
  napi_value out = NULL;
  if (status != napi_ok && j->err == 0) j->err = EIO;
  if (j->err != 0) {
    if (j->kind == JOB_OPEN && j->fd >= 0) close(j->fd);
    napi_create_int32(env, j->err, &out);
    napi_reject_deferred(env, j->deferred, out);
  } else {
    switch (j->kind) {
      case JOB_OPEN:
        napi_create_int32(env, j->fd, &out);
        break;
      case JOB_LIST:
        napi_create_array_with_length(env, j->count, &out);
        for (size_t i = 0; i < j->count; i++) {
          napi_value name;
          napi_create_string_utf8(env, j->names[i], NAPI_AUTO_LENGTH, &name);
          napi_set_element(env, out, (uint32_t)i, name);
        }
        break;
      case JOB_STAT:
        napi_create_array_with_length(env, j->count, &out);
        for (size_t i = 0; i < j->count; i++) {
          struct stat_row *r = &j->rows[i];
          char kind[2] = {r->kind, '\0'};
          napi_value row, v;
          napi_create_array_with_length(env, 5, &row);
          napi_create_string_utf8(env, kind, NAPI_AUTO_LENGTH, &v);
          napi_set_element(env, row, 0, v);
          napi_set_element(env, row, 1, make_number(env, r->kind ? (double)r->st.st_dev : 0));
          napi_set_element(env, row, 2, make_number(env, r->kind ? (double)r->st.st_ino : 0));
          napi_set_element(env, row, 3, make_number(env, r->kind ? (double)r->st.st_size : 0));
          napi_set_element(env, row, 4, make_number(env, r->err));
          napi_set_element(env, out, (uint32_t)i, row);
        }
        break;
    }
    napi_resolve_deferred(env, j->deferred, out);
  }
  napi_delete_async_work(env, j->work);
  free_job(j);
}

// Queues a job and returns its Promise; frees the job and throws when it cannot be queued.
static napi_value queue(napi_env env, struct job *j, const char *what) {
  napi_value promise, name;
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute, complete, j, &j->work) != napi_ok) {
    free_job(j);
    napi_throw_error(env, NULL, "cannot queue a native file call");
    return NULL;
  }
  if (napi_queue_async_work(env, j->work) != napi_ok) {
    napi_delete_async_work(env, j->work);
    free_job(j);
    napi_throw_error(env, NULL, "cannot queue a native file call");
    return NULL;
  }
  return promise;
}

static struct job *new_job(enum job_kind kind, int64_t dirfd) {
  struct job *j = calloc(1, sizeof(struct job));
  if (!j) return NULL;
  j->kind = kind;
  j->dirfd = (int)dirfd;
  j->fd = -1;
  return j;
}

static napi_value open_beneath_js(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int64_t dirfd, flags;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 || !get_i64(env, argv[0], &dirfd) || dirfd < 0 ||
      !get_i64(env, argv[2], &flags)) {
    napi_throw_type_error(env, NULL, "openBeneath(dirFd, rel, flags) needs a directory descriptor, a relative path and open flags");
    return NULL;
  }
  struct job *j = new_job(JOB_OPEN, dirfd);
  if (!j || !(j->rel = get_string(env, argv[1]))) {
    if (j) free_job(j);
    napi_throw_type_error(env, NULL, "openBeneath(dirFd, rel, flags): rel must be a string");
    return NULL;
  }
  j->flags = (int)flags;
  return queue(env, j, "stoker.openBeneath");
}

static napi_value list_dir_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int64_t dirfd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || !get_i64(env, argv[0], &dirfd) || dirfd < 0) {
    napi_throw_type_error(env, NULL, "listDir(dirFd) needs a directory descriptor");
    return NULL;
  }
  struct job *j = new_job(JOB_LIST, dirfd);
  if (!j) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  return queue(env, j, "stoker.listDir");
}

static napi_value stat_at_js(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int64_t dirfd;
  bool is_array = false;
  uint32_t n = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || !get_i64(env, argv[0], &dirfd) || dirfd < 0 ||
      napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[1], &n) != napi_ok) {
    napi_throw_type_error(env, NULL, "statAt(dirFd, names) needs a directory descriptor and an array of names");
    return NULL;
  }
  struct job *j = new_job(JOB_STAT, dirfd);
  if (!j || (n > 0 && (!(j->names = calloc(n, sizeof(char *))) || !(j->rows = calloc(n, sizeof(struct stat_row)))))) {
    if (j) free_job(j);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value item;
    char *name = napi_get_element(env, argv[1], i, &item) == napi_ok ? get_string(env, item) : NULL;
    if (!name || name[0] == '\0' || strchr(name, '/')) {
      free(name);
      free_job(j);
      napi_throw_type_error(env, NULL, "statAt(dirFd, names): every name must be a non-empty string without '/'");
      return NULL;
    }
    j->names[i] = name;
    j->count = i + 1;
  }
  return queue(env, j, "stoker.statAt");
}

static napi_value drop_cache(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int64_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || !get_i64(env, argv[0], &fd) || fd < 0) {
    napi_throw_type_error(env, NULL, "dropCache(fd) needs a descriptor");
    return NULL;
  }
  // posix_fadvise returns the error number itself rather than setting errno.
  return make_number(env, (double)posix_fadvise((int)fd, 0, 0, POSIX_FADV_DONTNEED));
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"residentBytes", NULL, resident_bytes, NULL, NULL, NULL, napi_default, NULL},
      {"residentBytesBeneath", NULL, resident_bytes_beneath, NULL, NULL, NULL, napi_default, NULL},
      {"openBeneath", NULL, open_beneath_js, NULL, NULL, NULL, napi_default, NULL},
      {"listDir", NULL, list_dir_js, NULL, NULL, NULL, napi_default, NULL},
      {"statAt", NULL, stat_at_js, NULL, NULL, NULL, napi_default, NULL},
      {"dropCache", NULL, drop_cache, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  napi_value o_path;
  napi_create_int32(env, O_PATH, &o_path);
  napi_set_named_property(env, exports, "O_PATH", o_path);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
