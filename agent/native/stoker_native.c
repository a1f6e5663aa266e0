// Stoker's optional native helper for file warming, on Node-API (stable across Node versions):
//   residentBytes(fd, size) -> number   bytes of the open file in the page cache (mmap + mincore), -1 if unknown
//   residentBytesOfPaths(paths) -> number   the sum over regular files, -1 if any cannot be measured
// It takes a descriptor the reader already opened and checked, so measuring residency costs no
// extra open (fincore opens every file again, which over a network filesystem is a round trip).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
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
// per file. Each is opened without following a final symlink and without blocking (a FIFO
// swapped in is never waited on), and must be a regular file; anything else makes the sum unknown.
static napi_value resident_bytes_of_paths(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  bool is_array = false;
  uint32_t n = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[0], &n) != napi_ok) {
    napi_throw_type_error(env, NULL, "residentBytesOfPaths(paths) needs an array of paths");
    return NULL;
  }
  long page = sysconf(_SC_PAGESIZE);
  unsigned char *vec = window_vector(page);
  if (!vec) return make_number(env, -1);
  char path[PATH_MAX];
  int64_t total = 0;
  for (uint32_t i = 0; i < n && total >= 0; i++) {
    napi_value item;
    size_t len = 0;
    if (napi_get_element(env, argv[0], i, &item) != napi_ok ||
        napi_get_value_string_utf8(env, item, path, sizeof(path), &len) != napi_ok || len >= sizeof(path) - 1) {
      total = -1;
      break;
    }
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
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

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"residentBytes", NULL, resident_bytes, NULL, NULL, NULL, napi_default, NULL},
      {"residentBytesOfPaths", NULL, resident_bytes_of_paths, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
