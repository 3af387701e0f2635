/* Concurrent handles through the C ABI (issue 20), the test ThreadSanitizer runs (scripts/sanitize.sh tsan):
 * 4 threads each load their own handle of one model and predict 6 images, while a fifth thread trains the
 * selftest method (2 epochs) and a sixth reads the request defaults and a dataset; the log sink, last-error and
 * status-name calls run on every thread. The header's contract: distinct handles may be used concurrently.
 * Each thread's counts must equal the ones a single thread got before (same handle state, same input).
 * usage: cellcount_test_concurrency MODEL_DIR DATASET_DIR SCRATCH_DIR
 * Prints "N passed, M failed"; exit 0 only when nothing failed. */
#define _POSIX_C_SOURCE 200809L
#include "cellcount/cellcount.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { N_PREDICT = 4, N_IMAGES = 6, W = 48, H = 40 };

static const char *g_model, *g_data, *g_scratch;
static double g_reference[N_IMAGES];
static int g_failed_threads = 0;
static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
static long g_log_lines = 0;

static void failure(const char* what) {
  pthread_mutex_lock(&g_mutex);
  ++g_failed_threads;
  fprintf(stderr, "FAILED: %s [last error: %s]\n", what, cellcount_last_error());
  pthread_mutex_unlock(&g_mutex);
}

static void log_sink(int32_t level, const char* msg, void* user) {
  (void)level;
  (void)msg;
  (void)user;
  pthread_mutex_lock(&g_mutex);
  ++g_log_lines;
  pthread_mutex_unlock(&g_mutex);
}

/* Image k: a few bright discs on a dark background, the same on every thread. */
static void make_image(int k, unsigned char* px) {
  int x, y, d;
  memset(px, 10, (size_t)W * H);
  for (d = 0; d < 3 + k; ++d) {
    const int cx = 6 + (d * 13 + k * 7) % (W - 12), cy = 6 + (d * 17 + k * 5) % (H - 12);
    for (y = cy - 2; y <= cy + 2; ++y)
      for (x = cx - 2; x <= cx + 2; ++x) px[y * W + x] = 220;
  }
}

static int predict_all(cellcount_model* m, double* counts) {
  unsigned char px[W * H];
  cellcount_image_view v;
  int k;
  memset(&v, 0, sizeof v);
  v.data = px;
  v.width = W;
  v.height = H;
  v.channels = 1;
  v.dtype = CELLCOUNT_DTYPE_U8;
  for (k = 0; k < N_IMAGES; ++k) {
    cellcount_result* r = NULL;
    make_image(k, px);
    if (cellcount_predict(m, &v, NULL, 0, NULL, NULL, &r) != CELLCOUNT_OK) return -1;
    counts[k] = cellcount_result_count(r);
    cellcount_result_free(r);
  }
  return 0;
}

static void* predict_thread(void* arg) {
  cellcount_model* m = NULL;
  double counts[N_IMAGES];
  int k;
  (void)arg;
  if (cellcount_model_load(g_model, &m) != CELLCOUNT_OK) {
    failure("model_load on a thread");
    return NULL;
  }
  if (predict_all(m, counts) != 0) failure("predict on a thread");
  else
    for (k = 0; k < N_IMAGES; ++k)
      if (fabs(counts[k] - g_reference[k]) > 1e-4 * (1.0 + fabs(g_reference[k]))) failure("count differs from one thread's");
  /* An error on this thread names this thread's call (thread-local last error). */
  if (cellcount_predict(m, NULL, NULL, 0, NULL, NULL, NULL) != CELLCOUNT_ERR_INVALID_ARGUMENT ||
      strlen(cellcount_last_error()) == 0)
    failure("NULL image not refused with a message");
  cellcount_model_free(m);
  return NULL;
}

static void* train_thread(void* arg) {
  char req[8192], *report = NULL;
  (void)arg;
  snprintf(req, sizeof req,
           "{\"method\": \"selftest\", \"dataset\": \"%s\", \"out\": \"%s/trained\", \"epochs\": 2, \"seed\": 3, "
           "\"overwrite\": true}",
           g_data, g_scratch);
  if (cellcount_train(req, NULL, NULL, &report) != CELLCOUNT_OK) failure("train on a thread");
  cellcount_string_free(report);
  return NULL;
}

static void* misc_thread(void* arg) {
  int k;
  (void)arg;
  for (k = 0; k < 20; ++k) {
    char *json = NULL;
    if (cellcount_request_defaults("selftest", "train", &json) != CELLCOUNT_OK) failure("request_defaults on a thread");
    cellcount_string_free(json);
    json = NULL;
    if (cellcount_dataset_read(g_data, NULL, &json) != CELLCOUNT_OK) failure("dataset_read on a thread");
    cellcount_string_free(json);
    if (strcmp(cellcount_status_name(CELLCOUNT_ERR_IO), "CELLCOUNT_ERR_IO") != 0) failure("status_name");
  }
  return NULL;
}

int main(int argc, char** argv) {
  pthread_t predictors[N_PREDICT], trainer, misc;
  cellcount_model* m = NULL;
  int k;
  if (argc != 4) {
    fprintf(stderr, "usage: cellcount_test_concurrency MODEL_DIR DATASET_DIR SCRATCH_DIR\n");
    return 2;
  }
  g_model = argv[1];
  g_data = argv[2];
  g_scratch = argv[3];
  mkdir(g_scratch, 0755);
  cellcount_log_set(log_sink, NULL, CELLCOUNT_LOG_DEBUG);
  cellcount_set_num_threads(1);
  if (cellcount_model_load(g_model, &m) != CELLCOUNT_OK || predict_all(m, g_reference) != 0) {
    fprintf(stderr, "reference predict failed: %s\n", cellcount_last_error());
    return 1;
  }
  cellcount_model_free(m);

  pthread_create(&trainer, NULL, train_thread, NULL);
  pthread_create(&misc, NULL, misc_thread, NULL);
  for (k = 0; k < N_PREDICT; ++k) pthread_create(&predictors[k], NULL, predict_thread, NULL);
  for (k = 0; k < N_PREDICT; ++k) pthread_join(predictors[k], NULL);
  pthread_join(misc, NULL);
  pthread_join(trainer, NULL);
  cellcount_log_set(NULL, NULL, CELLCOUNT_LOG_INFO);
  printf("%d passed, %d failed (%ld log lines)\n", g_failed_threads ? 0 : 1, g_failed_threads, g_log_lines);
  return g_failed_threads ? 1 : 0;
}
