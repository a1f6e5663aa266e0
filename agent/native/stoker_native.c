// Stoker's optional native helper for file warming, on Node-API (stable across Node versions):
//   residentBytes(fd, size) -> number   bytes of the open file in the page cache (mmap + mincore), -1 if unknown
// It takes a descriptor the reader already opened and checked, so measuring residency costs no
// extra open (fincore opens every file again, which over a network filesystem is a round trip).
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
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

// Counts resident pages in windows of at most 1 GiB so the vector stays small for huge files.
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
  const int64_t window = (int64_t)1 << 30;
  unsigned char *vec = malloc((size_t)(window / page) + 1);
  if (!vec) return make_number(env, -1);
  int64_t resident = 0;
  for (int64_t off = 0; off < size; off += window) {
    size_t len = (size_t)(size - off < window ? size - off : window);
    void *addr = mmap(NULL, len, PROT_READ, MAP_SHARED, (int)fd, (off_t)off);
    if (addr == MAP_FAILED) {
      free(vec);
      return make_number(env, -1);
    }
    size_t pages = (len + (size_t)page - 1) / (size_t)page;
    int rc = mincore(addr, len, vec);
    munmap(addr, len);
    if (rc != 0) {
      free(vec);
      return make_number(env, -1);
    }
    for (size_t i = 0; i < pages; i++) {
      if (vec[i] & 1) resident += (i == pages - 1 && (int64_t)((i + 1) * (size_t)page) > (int64_t)len) ? (int64_t)(len - i * (size_t)page) : page;
    }
  }
  free(vec);
  return make_number(env, (double)resident);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"residentBytes", NULL, resident_bytes, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
