/* C-only test of the ABI: uses cellcount.h and the C library, nothing of the C++ inside.
 * usage: cellcount_test_capi MODEL_DIR SCRATCH_DIR [--gpu]
 * Prints "N passed, M failed"; exit 0 only when nothing failed (77 = skipped, for --gpu without CUDA). */
#define _POSIX_C_SOURCE 200809L
#include "cellcount/cellcount.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "abi_check.h"

static char g_path[4096];
static const char* join(const char* a, const char* b) {
  snprintf(g_path, sizeof g_path, "%s/%s", a, b);
  return g_path;
}

static int copy_file(const char* from, const char* to) {
  FILE* in = fopen(from, "rb");
  FILE* out;
  char buf[65536];
  size_t n;
  if (!in) return -1;
  out = fopen(to, "wb");
  if (!out) {
    fclose(in);
    return -1;
  }
  while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
  fclose(in);
  return fclose(out);
}

static int write_text(const char* path, const char* text) {
  FILE* f = fopen(path, "wb");
  if (!f) return -1;
  fputs(text, f);
  return fclose(f);
}

/* A copy of the model folder at scratch/name. */
static void copy_model(const char* model, const char* scratch, const char* name, char* out_dir, size_t cap) {
  char from[4096], to[4096];
  snprintf(out_dir, cap, "%s/%s", scratch, name);
  mkdir(out_dir, 0755);
  snprintf(from, sizeof from, "%s/model.json", model);
  snprintf(to, sizeof to, "%s/model.json", out_dir);
  copy_file(from, to);
  snprintf(from, sizeof from, "%s/weights.pt", model);
  snprintf(to, sizeof to, "%s/weights.pt", out_dir);
  copy_file(from, to);
}

/* A 128x128 float image with bright Gaussian blobs at known places, like the fixture's training data. */
#define W 128
#define H 128
static float g_img[H * W];
static const int kBlobs = 9;
static void make_image(void) {
  int i, x, y;
  for (i = 0; i < H * W; ++i) g_img[i] = 20.0f;
  for (i = 0; i < kBlobs; ++i) {
    const float cx = 16.0f + 40.0f * (float)(i % 3) + 4.0f, cy = 16.0f + 40.0f * (float)(i / 3) + 2.0f;
    for (y = 0; y < H; ++y)
      for (x = 0; x < W; ++x) {
        const float d2 = ((float)x - cx) * ((float)x - cx) + ((float)y - cy) * ((float)y - cy);
        g_img[y * W + x] += 200.0f * expf(-d2 / (2.0f * 2.5f * 2.5f));
      }
  }
}

static cellcount_image_view image_view(void) {
  cellcount_image_view v;
  memset(&v, 0, sizeof v);
  v.data = g_img;
  v.width = W;
  v.height = H;
  v.channels = 1;
  v.row_stride_bytes = 0;
  v.dtype = CELLCOUNT_DTYPE_F32;
  return v;
}

static int cancel_after = 0, calls = 0;
static int32_t cancelling_progress(float f, const char* stage, void* user) {
  (void)f;
  (void)stage;
  (void)user;
  return ++calls > cancel_after ? 1 : 0;
}

static int log_lines = 0;
static void count_log(int32_t level, const char* msg, void* user) {
  (void)level;
  (void)msg;
  (void)user;
  ++log_lines;
}

static int gpu_parity(const char* model) {
  char* info = NULL;
  cellcount_model* m = NULL;
  cellcount_result *rc = NULL, *rg = NULL;
  cellcount_image_view v = image_view();
  cellcount_predict_params p = cellcount_predict_default_params();
  if (cellcount_library_info(&info) != CELLCOUNT_OK) return 1;
  if (!strstr(info, "\"cuda_available\":true")) {
    printf("skipped: this LibTorch has no CUDA or no GPU is visible\n");
    cellcount_string_free(info);
    return 77;
  }
  cellcount_string_free(info);
  EXPECT_STATUS(cellcount_model_load(model, &m), CELLCOUNT_OK);
  p.device = "cpu";
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &rc), CELLCOUNT_OK);
  p.device = "cuda:0";
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &rg), CELLCOUNT_OK);
  EXPECT(rg && strcmp(cellcount_result_device(rg), "cuda:0") == 0, "result says it ran on cuda:0");
  EXPECT(rc && rg && fabs(cellcount_result_count(rc) - cellcount_result_count(rg)) < 1e-3 * (1 + cellcount_result_count(rc)),
         "CPU and CUDA counts agree");
  cellcount_result_free(rc);
  cellcount_result_free(rg);
  cellcount_model_free(m);
  return abi_check_summary();
}

int main(int argc, char** argv) {
  const char *model, *scratch;
  char dir[4096], *report = NULL, *info_json = NULL;
  cellcount_model* m = NULL;
  cellcount_result* r = NULL;
  cellcount_image_view v;
  cellcount_predict_params p;
  size_t n, i;
  double base_count = -1, tiled_count = -1;
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL_DIR SCRATCH_DIR [--gpu]\n", argv[0]);
    return 2;
  }
  model = argv[1];
  scratch = argv[2];
  mkdir(scratch, 0755);
  make_image();
  if (argc > 3 && strcmp(argv[3], "--gpu") == 0) return gpu_parity(model);

  /* Version and ABI agree with the macros. */
  EXPECT(cellcount_version_number() == CELLCOUNT_VERSION_NUMBER, "version number");
  EXPECT(strcmp(cellcount_version_string(), CELLCOUNT_VERSION_STRING) == 0, "version string");
  EXPECT(cellcount_abi_version() == CELLCOUNT_ABI_VERSION, "abi version");
  EXPECT(strcmp(cellcount_status_name(CELLCOUNT_ERR_IO), "CELLCOUNT_ERR_IO") == 0, "status name");
  EXPECT(strcmp(cellcount_status_name((cellcount_status)12345), "CELLCOUNT_UNKNOWN_STATUS") == 0, "unknown status");

  /* Every free accepts NULL; getters accept NULL. */
  cellcount_model_free(NULL);
  cellcount_result_free(NULL);
  cellcount_string_free(NULL);
  EXPECT(cellcount_model_info(NULL) == NULL, "model_info(NULL)");
  EXPECT(cellcount_result_count(NULL) == 0.0 && cellcount_result_n_points(NULL) == 0, "result getters on NULL");

  /* NULL arguments. */
  m = (cellcount_model*)1;
  EXPECT_STATUS(cellcount_model_load(NULL, &m), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT(m == NULL, "out is NULLed on failure");
  EXPECT_STATUS(cellcount_model_load(model, NULL), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(cellcount_library_info(NULL), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(cellcount_set_num_threads(-1), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(cellcount_set_num_threads(2000), CELLCOUNT_ERR_INVALID_ARGUMENT); /* max 256 (issue 20: hung) */
  EXPECT_STATUS(cellcount_set_num_threads(2), CELLCOUNT_OK);

  /* Library info. */
  EXPECT_STATUS(cellcount_library_info(&info_json), CELLCOUNT_OK);
  EXPECT(info_json && strstr(info_json, "\"selftest\"") && strstr(info_json, "\"libtorch\""), "library info JSON");
  cellcount_string_free(info_json);

  /* Bad model path: ERR_IO and a message naming the path. */
  EXPECT_STATUS(cellcount_model_load("/nonexistent/model/dir", &m), CELLCOUNT_ERR_IO);
  EXPECT(strstr(cellcount_last_error(), "/nonexistent/model/dir") != NULL, "message names the path");

  /* Corrupt weights: checksum mismatch. */
  copy_model(model, scratch, "corrupt_weights", dir, sizeof dir);
  {
    FILE* f = fopen(join(dir, "weights.pt"), "r+b");
    EXPECT(f != NULL, "open weights copy");
    if (f) {
      fseek(f, 100, SEEK_SET);
      fputc(0x5A, f);
      fclose(f);
    }
  }
  EXPECT_STATUS(cellcount_model_load(dir, &m), CELLCOUNT_ERR_MODEL_FORMAT);
  EXPECT(strstr(cellcount_last_error(), "sha256") != NULL, "message mentions the checksum");

  /* Corrupt model.json. */
  copy_model(model, scratch, "corrupt_json", dir, sizeof dir);
  write_text(join(dir, "model.json"), "{ this is not json");
  EXPECT_STATUS(cellcount_model_load(dir, &m), CELLCOUNT_ERR_MODEL_FORMAT);

  /* Unknown method (weights intact): every "selftest" in model.json renamed. */
  copy_model(model, scratch, "wrong_method", dir, sizeof dir);
  {
    static char text[1 << 20];
    char* hit;
    FILE* f = fopen(join(dir, "model.json"), "rb");
    size_t len = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f) fclose(f);
    text[len] = 0;
    while ((hit = strstr(text, "\"selftest\"")) != NULL) memcpy(hit, "\"nomethod\"", 10);
    write_text(join(dir, "model.json"), text);
  }
  EXPECT_STATUS(cellcount_model_load(dir, &m), CELLCOUNT_ERR_WRONG_METHOD);
  EXPECT(strstr(cellcount_last_error(), "nomethod") != NULL, "message names the unknown method");
  write_text(join(dir, "model.json"), "{\"method\": \"selftest\", \"format_version\": 1, \"weights_sha256\": \"x\"}");
  EXPECT_STATUS(cellcount_model_load(dir, &m), CELLCOUNT_ERR_MODEL_FORMAT); /* checksum mismatch */

  /* Future format version. */
  write_text(join(dir, "model.json"), "{\"method\": \"selftest\", \"format_version\": 999, \"weights_sha256\": \"x\"}");
  EXPECT_STATUS(cellcount_model_load(dir, &m), CELLCOUNT_ERR_MODEL_FORMAT);
  EXPECT(strstr(cellcount_last_error(), "999") != NULL, "message names the version");

  /* The real model. */
  EXPECT_STATUS(cellcount_model_load(model, &m), CELLCOUNT_OK);
  if (!m) {
    return abi_check_summary();  /* the failed load counted: status 1 */
  }
  EXPECT(strstr(cellcount_model_info(m), "\"method\":\"selftest\"") != NULL, "model info names the method");
  EXPECT(strstr(cellcount_model_info(m), "\"needs_exemplars\":false") != NULL, "model info: needs_exemplars");

  cellcount_log_set(count_log, NULL, CELLCOUNT_LOG_DEBUG);
  v = image_view();
  p = cellcount_predict_default_params();
  p.device = "cpu";
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_OK);
  EXPECT(r != NULL, "result");
  if (r) {
    int64_t w = 0, h = 0, c = 0;
    float* dens;
    double sum = 0;
    float xy[2];
    n = cellcount_result_n_points(r);
    printf("fixture count on the test image: %.2f (%d blobs), %zu points\n", cellcount_result_count(r), kBlobs, n);
    /* The fixture is a tiny net retrained on every run (its float reductions are not bit-reproducible
     * across runs), so this checks sanity, not accuracy; numerics are tested against references elsewhere. */
    base_count = cellcount_result_count(r);
    EXPECT(base_count > 0.5 && base_count < 10.0 * kBlobs, "a positive, plausible count");
    EXPECT(n >= 1, "some points");
    EXPECT(cellcount_result_n_classes(r) == 1, "one class");
    EXPECT(fabs(cellcount_result_class_count(r, 0) - cellcount_result_count(r)) < 1e-9, "class count = count");
    EXPECT(strcmp(cellcount_result_device(r), "cpu") == 0, "device cpu");
    /* Default precision "auto": fp32, or bf16 on a CPU with AMX / AVX512-BF16 when its count held. */
    EXPECT(strcmp(cellcount_result_precision(r), "fp32") == 0 || strcmp(cellcount_result_precision(r), "bf16") == 0,
           "precision auto ran fp32 or bf16");
    EXPECT(cellcount_result_seconds(r) > 0, "seconds");
    /* Out-of-domain warnings (issue 24): a JSON array tied to the result; NULL for a NULL result. */
    EXPECT(cellcount_result_warnings(r) != NULL && cellcount_result_warnings(r)[0] == '[', "warnings are a JSON array");
    EXPECT(cellcount_result_warnings(NULL) == NULL, "no warnings of a NULL result");
    if (n > 1) EXPECT_STATUS(cellcount_result_points(r, xy, NULL, NULL, 1), CELLCOUNT_ERR_BUFFER_TOO_SMALL);
    {
      float* pts = malloc(sizeof(float) * 2 * (n + 1));
      int32_t* cls = malloc(sizeof(int32_t) * (n + 1));
      EXPECT_STATUS(cellcount_result_points(r, pts, cls, NULL, n), CELLCOUNT_OK);
      for (i = 0; i < n; ++i) EXPECT(pts[2 * i] >= 0 && pts[2 * i] < W && pts[2 * i + 1] >= 0 && pts[2 * i + 1] < H, "point inside");
      free(pts);
      free(cls);
    }
    EXPECT_STATUS(cellcount_result_image_size(r, CELLCOUNT_IMAGE_DENSITY, &w, &h, &c), CELLCOUNT_OK);
    EXPECT(w == W && h == H && c == 1, "density has the image's size");
    dens = malloc(sizeof(float) * W * H);
    EXPECT_STATUS(cellcount_result_image(r, CELLCOUNT_IMAGE_DENSITY, dens, 10), CELLCOUNT_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(cellcount_result_image(r, CELLCOUNT_IMAGE_DENSITY, dens, W * H), CELLCOUNT_OK);
    for (i = 0; i < W * H; ++i) sum += dens[i];
    EXPECT(fabs(sum - cellcount_result_count(r)) < 1e-3 * (1 + sum), "density sums to the count");
    free(dens);
    EXPECT_STATUS(cellcount_result_image_size(r, CELLCOUNT_IMAGE_MASK, &w, &h, &c), CELLCOUNT_OK);
    EXPECT(w == 0 && h == 0, "no mask for this method");
    EXPECT_STATUS(cellcount_result_image_size(r, 42, &w, &h, &c), CELLCOUNT_ERR_INVALID_ARGUMENT);
    cellcount_result_free(r);
    r = NULL;
  }

  /* A region mask: only the left half counts. */
  {
    static uint8_t mask[H * W];
    cellcount_image_view mv;
    cellcount_result* full = NULL;
    int x, y;
    for (y = 0; y < H; ++y)
      for (x = 0; x < W; ++x) mask[y * W + x] = x < W / 2 ? 255 : 0;
    memset(&mv, 0, sizeof mv);
    mv.data = mask;
    mv.width = W;
    mv.height = H;
    mv.channels = 1;
    mv.dtype = CELLCOUNT_DTYPE_U8;
    EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &full), CELLCOUNT_OK);
    EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, &mv, &p, &r), CELLCOUNT_OK);
    EXPECT(r && full && cellcount_result_count(r) < cellcount_result_count(full), "region count below full count");
    cellcount_result_free(r);
    cellcount_result_free(full);
    r = NULL;
    mv.width = W / 2;
    EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, &mv, &p, &r), CELLCOUNT_ERR_INVALID_ARGUMENT);
  }

  /* Wrong dtype, channels, sizes, strides, NaN pixels, 1x1 image, reserved field. */
  v = image_view();
  v.dtype = 7;
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT(r == NULL, "no result on failure");
  v = image_view();
  v.channels = 2; /* same buffer read as a 64-wide 2-channel image: the model takes 1 channel */
  v.width = W / 2;
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_ERR_INVALID_ARGUMENT);
  v = image_view();
  v.width = 0;
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_ERR_INVALID_ARGUMENT);
  v = image_view();
  v.width = 1;
  v.height = 1;
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT(strstr(cellcount_last_error(), "1 x 1") != NULL, "1x1 message gives the size");
  v = image_view();
  v.row_stride_bytes = 4;
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_ERR_INVALID_ARGUMENT);
  v = image_view();
  v.data = NULL;
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_ERR_INVALID_ARGUMENT);
  v = image_view();
  g_img[5] = NAN;
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT(strstr(cellcount_last_error(), "NaN") != NULL, "NaN message");
  g_img[5] = 20.0f;
  v.reserved = 1;
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_ERR_INVALID_ARGUMENT);
  v = image_view();
  {
    /* uint8 and uint16 views of the same picture with a padded stride work. */
    static uint16_t img16[H * (W + 3)];
    int x, y;
    for (y = 0; y < H; ++y)
      for (x = 0; x < W; ++x) img16[y * (W + 3) + x] = (uint16_t)(g_img[y * W + x] * 100.0f);
    v.data = img16;
    v.dtype = CELLCOUNT_DTYPE_U16;
    v.row_stride_bytes = (W + 3) * 2;
    EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_OK);
    EXPECT(r && fabs(cellcount_result_count(r) - base_count) < 0.01 * base_count,
           "a uint16 view with a padded stride counts like the float view");
    cellcount_result_free(r);
    r = NULL;
    v = image_view();
  }

  /* Exemplars given to a model that takes none; NULL boxes with n > 0. */
  {
    cellcount_box b = {10, 10, 20, 20};
    EXPECT_STATUS(cellcount_predict(m, &v, &b, 1, NULL, &p, &r), CELLCOUNT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(cellcount_predict(m, &v, NULL, 2, NULL, &p, &r), CELLCOUNT_ERR_INVALID_ARGUMENT);
  }

  /* Bad params. */
  p = cellcount_predict_default_params();
  p.device = "tpu";
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_ERR_DEVICE);
  p = cellcount_predict_default_params();
  p.device = "cuda:99";
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_ERR_DEVICE);
  p = cellcount_predict_default_params();
  p.precision = "fp8";
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_ERR_INVALID_ARGUMENT);
  p = cellcount_predict_default_params();
  p.struct_size = 3;
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_ERR_INVALID_ARGUMENT);
  p = cellcount_predict_default_params();
  p.tile_size = 8;
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_ERR_INVALID_ARGUMENT);
  p = cellcount_predict_default_params();
  p.tile_size = 64;
  p.tile_overlap = 40;
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_ERR_INVALID_ARGUMENT);
  /* Issue 20: an overlap that does not fit the model's tile (256) when tile_size is 0; a CUDA index
   * too long for an int (was ERR_INTERNAL "stoi"); fp16 on the CPU (ERR_UNSUPPORTED, as the header says). */
  p = cellcount_predict_default_params();
  p.device = "cpu";
  p.tile_overlap = 200;
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_ERR_INVALID_ARGUMENT);
  p = cellcount_predict_default_params();
  p.device = "cuda:99999999999999999999";
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_ERR_DEVICE);
  p = cellcount_predict_default_params();
  p.device = "cpu";
  p.precision = "fp16";
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_ERR_UNSUPPORTED);

  /* Tiling: a small tile gives the same count as one tile (seam-free stitching). */
  {
    cellcount_result* one = NULL;
    p = cellcount_predict_default_params();
    p.device = "cpu";
    EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &one), CELLCOUNT_OK);
    p.tile_size = 48;
    p.tile_overlap = 16;
    EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_OK);
    EXPECT(one && r && fabs(cellcount_result_count(one) - cellcount_result_count(r)) < 1e-3 * (1 + cellcount_result_count(one)),
           "tiled count equals untiled count");
    if (r) tiled_count = cellcount_result_count(r);
    cellcount_result_free(one);
    cellcount_result_free(r);
    r = NULL;
  }

  /* Cancel from the callback: CANCELLED, no result, and the model stays usable. */
  p = cellcount_predict_default_params();
  p.device = "cpu";
  p.tile_size = 48;
  p.tile_overlap = 16;
  p.progress = cancelling_progress;
  cancel_after = 2;
  calls = 0;
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_CANCELLED);
  EXPECT(r == NULL, "no result after cancel");
  EXPECT(calls == 3, "cancelled at the third progress call");
  cancel_after = 1000000;
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_OK);
  EXPECT(r && fabs(cellcount_result_count(r) - tiled_count) < 1e-4 * (1 + tiled_count),
         "model usable after cancel: the same tiled count as before");
  cellcount_result_free(r);
  r = NULL;
  cellcount_log_set(NULL, NULL, CELLCOUNT_LOG_INFO);
  EXPECT(log_lines > 0, "the log callback received messages");

  /* ABI 2: a method's own prediction options travel as JSON beside the params and are checked by the library
   * (the selftest method declares none, so any option is unknown; a NULL options_json is the defaults). */
  p = cellcount_predict_default_params();
  p.device = "cpu";
  EXPECT(p.options_json == NULL, "no method options by default");
  p.options_json = "{\"mask_threshold\": 0.5}";
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT(strstr(cellcount_last_error(), "unknown option \"mask_threshold\"") != NULL, "names the unknown option");
  EXPECT(r == NULL, "no result when an option is refused");
  p.options_json = "{not json";
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_ERR_INVALID_ARGUMENT);
  p.options_json = "[0.5]";
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_ERR_INVALID_ARGUMENT);
  p.options_json = "{}";
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_OK);
  cellcount_result_free(r);
  r = NULL;
  cellcount_model_free(m);

  /* Option metadata: exemplar's mask_threshold is declared with its range; unknown kinds are refused. */
  EXPECT_STATUS(cellcount_request_options("exemplar", "predict", &report), CELLCOUNT_OK);
  EXPECT(report && strstr(report, "\"name\":\"mask_threshold\"") && strstr(report, "\"max\":1.0") &&
             strstr(report, "\"min\":-1.0"),
         "exemplar declares mask_threshold in [-1, 1] (a cosine)");
  cellcount_string_free(report);
  report = NULL;
  EXPECT_STATUS(cellcount_request_options("", "predict", &report), CELLCOUNT_OK);
  EXPECT(report && strstr(report, "\"name\":\"tile_size\"") != NULL, "generic predict options listed");
  cellcount_string_free(report);
  report = NULL;
  EXPECT_STATUS(cellcount_request_options("selftest", "train", &report), CELLCOUNT_OK);
  EXPECT(report && strstr(report, "\"name\":\"epochs\"") && strstr(report, "\"type\":\"int\""),
         "undeclared train fields are listed from their defaults");
  cellcount_string_free(report);
  report = NULL;
  EXPECT_STATUS(cellcount_request_options("selftest", "dance", &report), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(cellcount_request_options("nope", "train", &report), CELLCOUNT_ERR_WRONG_METHOD);
  EXPECT_STATUS(cellcount_request_options(NULL, "train", &report), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(cellcount_request_defaults("exemplar", "predict", &report), CELLCOUNT_OK);
  EXPECT(report && strstr(report, "\"mask_threshold\"") && !strstr(report, "\"method\""),
         "predict defaults are the options object itself");
  cellcount_string_free(report);
  report = NULL;

  /* Image files: a float TIFF written and read back exactly; planes, dtype; never overwritten. */
  {
    cellcount_image* im = NULL;
    cellcount_image_view pv;
    char tif[4096], png[4096];
    float xy[4] = {10, 12, 30, 40};
    int32_t cls[2] = {0, 1};
    snprintf(tif, sizeof tif, "%s/roundtrip.tif", scratch);
    snprintf(png, sizeof png, "%s/overlay.png", scratch);
    remove(tif);
    remove(png);
    v = image_view();
    EXPECT_STATUS(cellcount_image_write(tif, &v, 32, 0), CELLCOUNT_OK);
    EXPECT_STATUS(cellcount_image_write(tif, &v, 32, 0), CELLCOUNT_ERR_IO);
    EXPECT_STATUS(cellcount_image_write(tif, &v, 12, 1), CELLCOUNT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(cellcount_image_read(tif, &im), CELLCOUNT_OK);
    EXPECT(cellcount_image_n_planes(im) == 1 && cellcount_image_source_dtype(im) == CELLCOUNT_DTYPE_F32,
           "one float plane");
    EXPECT_STATUS(cellcount_image_plane(im, 0, &pv), CELLCOUNT_OK);
    EXPECT(pv.width == W && pv.height == H && pv.channels == 1 && pv.dtype == CELLCOUNT_DTYPE_F32 &&
               memcmp(pv.data, g_img, sizeof g_img) == 0,
           "float TIFF read back exactly");
    EXPECT_STATUS(cellcount_image_plane(im, 1, &pv), CELLCOUNT_ERR_INVALID_ARGUMENT);
    cellcount_image_free(im);
    cellcount_image_free(NULL);
    EXPECT(cellcount_image_n_planes(NULL) == 0, "n_planes(NULL)");
    im = (cellcount_image*)1;
    EXPECT_STATUS(cellcount_image_read(join(scratch, "missing.png"), &im), CELLCOUNT_ERR_IO);
    EXPECT(im == NULL && strstr(cellcount_last_error(), "missing.png") != NULL, "names the missing file");
    EXPECT_STATUS(cellcount_overlay_write(png, &v, xy, cls, 2, 3, 0), CELLCOUNT_OK);
    EXPECT_STATUS(cellcount_overlay_write(png, &v, NULL, NULL, 2, 3, 1), CELLCOUNT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(cellcount_image_read(png, &im), CELLCOUNT_OK);
    EXPECT_STATUS(cellcount_image_plane(im, 0, &pv), CELLCOUNT_OK);
    EXPECT(pv.channels == 3 && cellcount_image_source_dtype(im) == CELLCOUNT_DTYPE_U8, "overlay is an RGB PNG");
    cellcount_image_free(im);
    EXPECT(cellcount_is_image_file("a.TIFF") == 1 && cellcount_is_image_file("a.csv") == 0 &&
               cellcount_is_image_file(NULL) == 0,
           "image file extensions");
  }

  /* Metrics: MAE 1, RMSE sqrt(2) of (10, 4) against (12, 4); one of two points matched within 3 px. */
  EXPECT_STATUS(cellcount_metrics("{\"predicted\": [10, 4], \"truth\": [12, 4]}", &report), CELLCOUNT_OK);
  EXPECT(report && strstr(report, "\"mae\":1.0") && strstr(report, "\"n\":2"), "MAE of the counts");
  cellcount_string_free(report);
  report = NULL;
  EXPECT_STATUS(cellcount_metrics("{\"predicted\": [2], \"truth\": [2], \"radius\": 3, \"points\": "
                                  "[{\"predicted\": [[0, 0], [10, 10]], \"truth\": [[1, 0], [50, 50]]}]}",
                                  &report),
                CELLCOUNT_OK);
  EXPECT(report && strstr(report, "\"tp\":1") && strstr(report, "\"f1\":0.5"), "point F1");
  cellcount_string_free(report);
  report = NULL;
  EXPECT_STATUS(cellcount_metrics("{\"predicted\": [1, 2], \"truth\": [1]}", &report),
                CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(cellcount_metrics("{\"predicted\": [1], \"truth\": [1], \"points\": []}", &report),
                CELLCOUNT_ERR_INVALID_ARGUMENT); /* points need a radius */
  EXPECT_STATUS(cellcount_metrics("{\"predicted\": [1], \"truth\": [1], \"extra\": 1}", &report),
                CELLCOUNT_ERR_INVALID_ARGUMENT);

  /* Train / evaluate / synthesize requests. */
  EXPECT_STATUS(cellcount_train("{not json", NULL, NULL, &report), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT(report == NULL, "no report on failure");
  EXPECT_STATUS(cellcount_train("{\"method\": \"nope\"}", NULL, NULL, &report), CELLCOUNT_ERR_WRONG_METHOD);
  EXPECT_STATUS(cellcount_train("{\"method\": \"selftest\", \"epoch\": 3}", NULL, NULL, &report),
                CELLCOUNT_ERR_INVALID_ARGUMENT); /* a typo is not silently ignored */
  EXPECT(strstr(cellcount_last_error(), "epoch") != NULL, "names the unknown field");
  EXPECT_STATUS(cellcount_train("{\"method\": \"selftest\"}", NULL, NULL, NULL), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(cellcount_request_defaults("selftest", "train", &report), CELLCOUNT_OK);
  EXPECT(report && strstr(report, "\"epochs\"") != NULL, "train defaults list epochs");
  cellcount_string_free(report);
  report = NULL;
  EXPECT_STATUS(cellcount_request_defaults("selftest", "dance", &report), CELLCOUNT_ERR_INVALID_ARGUMENT);
  {
    char req[8192];
    char data[4096];
    snprintf(data, sizeof data, "%s/../data", model);
    /* Model folders are never overwritten unless asked. */
    snprintf(req, sizeof req, "{\"method\": \"selftest\", \"dataset\": \"%s\", \"out\": \"%s\", \"epochs\": 1}", data, model);
    EXPECT_STATUS(cellcount_train(req, NULL, NULL, &report), CELLCOUNT_ERR_IO);
    /* A cancelled training run returns CANCELLED and writes no model. */
    snprintf(dir, sizeof dir, "%s/cancelled_model", scratch);
    snprintf(req, sizeof req, "{\"method\": \"selftest\", \"dataset\": \"%s\", \"out\": \"%s\", \"epochs\": 3}", data, dir);
    cancel_after = 2;
    calls = 0;
    EXPECT_STATUS(cellcount_train(req, cancelling_progress, NULL, &report), CELLCOUNT_CANCELLED);
    {
      struct stat st;
      EXPECT(stat(dir, &st) != 0, "no model folder after a cancelled training");
    }
    /* Evaluation of the fixture on its own test split. */
    snprintf(req, sizeof req, "{\"model\": \"%s\", \"dataset\": \"%s\", \"split\": \"test\", \"device\": \"cpu\"}", model, data);
    EXPECT_STATUS(cellcount_evaluate(req, NULL, NULL, &report), CELLCOUNT_OK);
    EXPECT(report && strstr(report, "\"mae\"") && strstr(report, "\"f1\""), "evaluation report has MAE and F1");
    cellcount_string_free(report);
    report = NULL;
    snprintf(req, sizeof req, "{\"model\": \"%s\", \"dataset\": \"/nonexistent\"}", model);
    EXPECT_STATUS(cellcount_evaluate(req, NULL, NULL, &report), CELLCOUNT_ERR_IO);
    /* Dataset annotations and a split written through the library. */
    EXPECT_STATUS(cellcount_dataset_read(data, NULL, &report), CELLCOUNT_OK);
    EXPECT(report && strstr(report, "\"samples\"") && strstr(report, "\"points\""), "dataset with points");
    cellcount_string_free(report);
    report = NULL;
    EXPECT_STATUS(cellcount_dataset_read("/nonexistent", NULL, &report), CELLCOUNT_ERR_IO);
    snprintf(dir, sizeof dir, "%s/split.csv", scratch);
    remove(dir);
    snprintf(req, sizeof req, "{\"dataset\": \"%s\", \"out\": \"%s\", \"ratios\": [2, 1, 1], \"seed\": 3}", data, dir);
    EXPECT_STATUS(cellcount_split(req, &report), CELLCOUNT_OK);
    EXPECT(report && strstr(report, "\"train\"") && strstr(report, "\"val\""), "split report");
    cellcount_string_free(report);
    report = NULL;
    EXPECT_STATUS(cellcount_split(req, &report), CELLCOUNT_ERR_IO); /* never overwritten */
    snprintf(req, sizeof req, "{\"dataset\": \"%s\", \"out\": \"%s\", \"ratio\": [2, 1, 1]}", data, dir);
    EXPECT_STATUS(cellcount_split(req, &report), CELLCOUNT_ERR_INVALID_ARGUMENT); /* typo of a field */
    /* Synthesis refuses a non-empty folder. */
    snprintf(req, sizeof req, "{\"out\": \"%s\", \"n\": 2}", data);
    EXPECT_STATUS(cellcount_synthesize(req, NULL, NULL, &report), CELLCOUNT_ERR_IO);
  }

  /* Export: the fixture's method has no bioimageio exporter; it and bad requests are refused, naming what is missing,
   * and nothing is written (the shipped models' packages: tests/bioimageio and Bioimageio.*). */
  {
    char req[8192];
    struct stat st;
    snprintf(dir, sizeof dir, "%s/export.zip", scratch);
    remove(dir);
    snprintf(req, sizeof req, "{\"model\": \"%s\", \"out\": \"%s\", \"format\": \"bioimageio\"}", model, dir);
    report = NULL;
    EXPECT_STATUS(cellcount_export(req, &report), CELLCOUNT_ERR_UNSUPPORTED);
    EXPECT(report == NULL, "no report from a refused export");
    EXPECT(strstr(cellcount_last_error(), "no bioimageio export") != NULL, "the refusal names the missing export");
    EXPECT_STATUS(cellcount_export(NULL, &report), CELLCOUNT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(cellcount_export("{\"model\": 1}", NULL), CELLCOUNT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(cellcount_export("not json", NULL), CELLCOUNT_ERR_INVALID_ARGUMENT);
    snprintf(req, sizeof req, "{\"model\": \"/nonexistent\", \"out\": \"%s\"}", dir);
    EXPECT_STATUS(cellcount_export(req, NULL), CELLCOUNT_ERR_IO);
    EXPECT(stat(dir, &st) != 0, "a refused export writes nothing");
  }

  return abi_check_summary();
}
