/*
 * The limit of small-file intake on this machine: what a durable receiver of many small files must
 * do at least, with no network and no protocol. For each file: open a new file in a staging folder,
 * write its bytes (from memory), fdatasync, close, rename it into the destination folder, fsync
 * that folder. THREADS threads take the files in turn (the same concurrency as the connections of
 * the server's run).
 *
 * File i gets bytes [i * SIZE, (i + 1) * SIZE) of POOL (read into memory before the clock starts)
 * and is named f<i>.bin, so the benchmark checks it as it checks the server's.
 *
 * Usage: intake-limit POOL STAGING DEST FILES SIZE THREADS
 * Prints one JSON line: {"files":N,"seconds":S} (the time from the threads' start to their end).
 * Built by bench/perf-store.ts with `cc -O2 -pthread`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *staging;
static const char *dest;
static char *pool;
static long files;
static long size;
static atomic_long next_file;
static int dest_fd;

static void die(const char *what, const char *path) {
  fprintf(stderr, "intake-limit: %s %s: %s\n", what, path, strerror(errno));
  exit(1);
}

/** Writes file i durably and renames it into the destination folder, then syncs that folder. */
static void intake(long i) {
  char from[4096], to[4096];
  snprintf(from, sizeof from, "%s/f%ld.tmp", staging, i);
  snprintf(to, sizeof to, "%s/f%ld.bin", dest, i);
  int fd = open(from, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) die("open", from);
  for (long done = 0; done < size;) {
    ssize_t n = write(fd, pool + i * size + done, (size_t)(size - done));
    if (n < 0) die("write", from);
    done += n;
  }
  if (fdatasync(fd) != 0) die("fdatasync", from);
  if (close(fd) != 0) die("close", from);
  if (rename(from, to) != 0) die("rename", to);
  if (fsync(dest_fd) != 0) die("fsync", dest);
}

static void *worker(void *unused) {
  (void)unused;
  for (;;) {
    long i = atomic_fetch_add(&next_file, 1);
    if (i >= files) return NULL;
    intake(i);
  }
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: intake-limit POOL STAGING DEST FILES SIZE THREADS\n");
    return 2;
  }
  staging = argv[2];
  dest = argv[3];
  files = atol(argv[4]);
  size = atol(argv[5]);
  long threads = atol(argv[6]);
  if (files < 1 || size < 1 || threads < 1 || threads > 4096) {
    fprintf(stderr, "intake-limit: FILES, SIZE and THREADS must be positive (THREADS at most 4096)\n");
    return 2;
  }
  pool = malloc((size_t)(files * size));
  if (!pool) die("malloc", "pool");
  int pfd = open(argv[1], O_RDONLY | O_CLOEXEC);
  if (pfd < 0) die("open", argv[1]);
  for (long done = 0; done < files * size;) {
    ssize_t n = read(pfd, pool + done, (size_t)(files * size - done));
    if (n <= 0) die("read (the pool is shorter than FILES * SIZE)", argv[1]);
    done += n;
  }
  close(pfd);
  dest_fd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dest_fd < 0) die("open", dest);

  pthread_t *tids = calloc((size_t)threads, sizeof *tids);
  if (!tids) die("calloc", "threads");
  double t0 = now();
  for (long t = 0; t < threads; t++) {
    errno = pthread_create(&tids[t], NULL, worker, NULL);
    if (errno != 0) die("pthread_create", "worker");
  }
  for (long t = 0; t < threads; t++) pthread_join(tids[t], NULL);
  double seconds = now() - t0;
  printf("{\"files\":%ld,\"seconds\":%.6f}\n", files, seconds);
  return 0;
}
