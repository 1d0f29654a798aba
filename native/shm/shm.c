/*
 * myelin_shm: POSIX shared memory for Node.js, the few calls Myelin's shared-memory pool needs.
 *
 *   create(name, bytes)  shm_open(O_CREAT|O_EXCL, 0600) + ftruncate + mmap -> Buffer
 *   open(name)           shm_open(O_RDWR) + fstat + mmap                   -> Buffer
 *   unlink(name)         shm_unlink; false when it was already gone
 *   atomicAdd/Load/Store/Cas(buf, offset, ...)  sequentially consistent operations on an
 *                        aligned int32 inside such a buffer (slot headers shared by processes)
 *   socketBuffers(fd, bytes)  asks for `bytes` of kernel send and receive buffer on a socket
 *                        (SO_SNDBUF/SO_RCVBUF, capped by net.core.wmem_max/rmem_max); returns the
 *                        send buffer granted, -1 when the descriptor is not a socket
 *
 * The Buffer is external: it points into the mapping, and the mapping is unmapped when the last
 * JavaScript view of it is collected. The file descriptor is closed at once (the mapping keeps
 * the memory alive, even after shm_unlink).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME_MAX_BYTES 240

static napi_value throw_errno(napi_env env, const char *what, const char *name, int err) {
  char msg[400];
  snprintf(msg, sizeof msg, "%s %s: %s", what, name, strerror(err));
  napi_throw_error(env, err == ENOENT ? "ENOENT" : err == EEXIST ? "EEXIST" : "ESHM", msg);
  return NULL;
}

static int get_name(napi_env env, napi_value v, char *out) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, out, NAME_MAX_BYTES + 1, &len) != napi_ok || len == 0 ||
      len >= NAME_MAX_BYTES || out[0] != '/' || strchr(out + 1, '/') != NULL) {
    napi_throw_type_error(env, "EINVAL", "a shared-memory name must be a string '/name' without other slashes");
    return 0;
  }
  return 1;
}

static void finalize_mapping(napi_env env, void *data, void *hint) {
  (void)env;
  munmap(data, (size_t)(uintptr_t)hint);
}

static napi_value wrap(napi_env env, void *addr, size_t bytes) {
  napi_value buf;
  if (napi_create_external_buffer(env, bytes, addr, finalize_mapping, (void *)(uintptr_t)bytes, &buf) != napi_ok) {
    munmap(addr, bytes);
    napi_throw_error(env, "ESHM", "cannot wrap a shared-memory mapping in a Buffer");
    return NULL;
  }
  return buf;
}

static napi_value shm_create(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char name[NAME_MAX_BYTES + 1];
  double bytes_d = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || !get_name(env, argv[0], name)) return argc < 2 ? (napi_throw_type_error(env, "EINVAL", "create(name, bytes)"), NULL) : NULL;
  if (napi_get_value_double(env, argv[1], &bytes_d) != napi_ok || !(bytes_d >= 1) || bytes_d > (double)(1ULL << 40) ||
      bytes_d != (double)(size_t)bytes_d) {
    napi_throw_range_error(env, "EINVAL", "shared-memory size must be an integer number of bytes >= 1");
    return NULL;
  }
  size_t bytes = (size_t)bytes_d;
  int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) return throw_errno(env, "shm_open", name, errno);
  if (ftruncate(fd, (off_t)bytes) != 0) {
    int e = errno;
    close(fd);
    shm_unlink(name);
    return throw_errno(env, "ftruncate", name, e);
  }
  void *addr = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int e = errno;
  close(fd);
  if (addr == MAP_FAILED) {
    shm_unlink(name);
    return throw_errno(env, "mmap", name, e);
  }
  return wrap(env, addr, bytes);
}

static napi_value shm_open_existing(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char name[NAME_MAX_BYTES + 1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) {
    napi_throw_type_error(env, "EINVAL", "open(name)");
    return NULL;
  }
  if (!get_name(env, argv[0], name)) return NULL;
  int fd = shm_open(name, O_RDWR, 0);
  if (fd < 0) return throw_errno(env, "shm_open", name, errno);
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size <= 0) {
    int e = st.st_size <= 0 ? EINVAL : errno;
    close(fd);
    return throw_errno(env, "fstat", name, e);
  }
  size_t bytes = (size_t)st.st_size;
  void *addr = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int e = errno;
  close(fd);
  if (addr == MAP_FAILED) return throw_errno(env, "mmap", name, e);
  return wrap(env, addr, bytes);
}

static napi_value shm_unlink_name(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char name[NAME_MAX_BYTES + 1];
  napi_value result;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) {
    napi_throw_type_error(env, "EINVAL", "unlink(name)");
    return NULL;
  }
  if (!get_name(env, argv[0], name)) return NULL;
  if (shm_unlink(name) != 0) {
    if (errno != ENOENT) return throw_errno(env, "shm_unlink", name, errno);
    napi_get_boolean(env, false, &result);
    return result;
  }
  napi_get_boolean(env, true, &result);
  return result;
}

/* Finds the int32 at byte offset argv[1] of the Buffer argv[0]; NULL (and a thrown error) if out of range. */
static int32_t *int_at(napi_env env, napi_value *argv) {
  void *data;
  size_t len;
  double off_d;
  bool is_buf = false;
  napi_is_buffer(env, argv[0], &is_buf);
  if (!is_buf || napi_get_buffer_info(env, argv[0], &data, &len) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "expected a Buffer");
    return NULL;
  }
  if (napi_get_value_double(env, argv[1], &off_d) != napi_ok || !(off_d >= 0) || off_d + 4 > (double)len ||
      off_d != (double)(size_t)off_d) {
    napi_throw_range_error(env, "EINVAL", "atomic offset out of range");
    return NULL;
  }
  uintptr_t p = (uintptr_t)data + (size_t)off_d;
  if (p % 4 != 0) {
    napi_throw_range_error(env, "EINVAL", "atomic offset is not 4-byte aligned");
    return NULL;
  }
  return (int32_t *)p;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < want) {
    napi_throw_type_error(env, "EINVAL", "missing arguments");
    return 0;
  }
  return 1;
}

static int get_i32(napi_env env, napi_value v, int32_t *out) {
  if (napi_get_value_int32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "expected an integer");
    return 0;
  }
  return 1;
}

static napi_value int_value(napi_env env, int32_t v) {
  napi_value r;
  napi_create_int32(env, v, &r);
  return r;
}

static napi_value atomic_add(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t d;
  if (!get_args(env, info, 3, argv)) return NULL;
  int32_t *p = int_at(env, argv);
  if (p == NULL || !get_i32(env, argv[2], &d)) return NULL;
  return int_value(env, __atomic_fetch_add(p, d, __ATOMIC_SEQ_CST));
}

static napi_value atomic_load(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  int32_t *p = int_at(env, argv);
  if (p == NULL) return NULL;
  return int_value(env, __atomic_load_n(p, __ATOMIC_SEQ_CST));
}

static napi_value atomic_store(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t v;
  if (!get_args(env, info, 3, argv)) return NULL;
  int32_t *p = int_at(env, argv);
  if (p == NULL || !get_i32(env, argv[2], &v)) return NULL;
  __atomic_store_n(p, v, __ATOMIC_SEQ_CST);
  return NULL;
}

static napi_value atomic_cas(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t expected, desired;
  if (!get_args(env, info, 4, argv)) return NULL;
  int32_t *p = int_at(env, argv);
  if (p == NULL || !get_i32(env, argv[2], &expected) || !get_i32(env, argv[3], &desired)) return NULL;
  __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return int_value(env, expected); /* the value found: == expected on success */
}

static napi_value socket_buffers(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd, bytes;
  if (!get_args(env, info, 2, argv)) return NULL;
  if (!get_i32(env, argv[0], &fd) || !get_i32(env, argv[1], &bytes)) return NULL;
  int v = bytes;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v) != 0) return int_value(env, -1);
  v = bytes;
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
  int got = 0;
  socklen_t len = sizeof got;
  if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &got, &len) != 0) return int_value(env, -1);
  return int_value(env, got);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"create", NULL, shm_create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"open", NULL, shm_open_existing, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unlink", NULL, shm_unlink_name, NULL, NULL, NULL, napi_enumerable, NULL},
      {"atomicAdd", NULL, atomic_add, NULL, NULL, NULL, napi_enumerable, NULL},
      {"atomicLoad", NULL, atomic_load, NULL, NULL, NULL, napi_enumerable, NULL},
      {"atomicStore", NULL, atomic_store, NULL, NULL, NULL, napi_enumerable, NULL},
      {"atomicCas", NULL, atomic_cas, NULL, NULL, NULL, napi_enumerable, NULL},
      {"socketBuffers", NULL, socket_buffers, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
