/*
 * cellcount.h -- the only public header of libcellcount.
 *
 * Deep-learning cell counting (four published methods) behind a plain C99 ABI.
 * This header is the manual: every function says what it returns, who owns what, and
 * which statuses it can give.
 *
 * Conventions
 *  - Every fallible call returns a cellcount_status and writes results through an `out` pointer.
 *    On failure `*out` is left NULL and cellcount_last_error() says what was expected and what came.
 *  - No C++ exception ever crosses this boundary.
 *  - Ownership is written next to every pointer: BORROWED (read during the call only, never retained),
 *    OWNED BY LIBRARY (freed by the matching *_free, which accepts NULL), CALLER-SIZED (the caller
 *    allocates `capacity` elements; size-query functions tell how many are needed).
 *  - Threads: distinct handles may be used concurrently from different threads; one handle must not
 *    be used by two threads at once. Version, status-name, log and last-error calls are thread-safe.
 *    Callbacks run on the calling thread, between tiles, slices or training steps.
 *  - Cancel: a progress callback returning non-zero makes the call return CELLCOUNT_CANCELLED at the
 *    next checkpoint; the model handle stays usable and no file is left half-written.
 *  - Pixel coordinates: x = column, y = row, 0-based, pixel centres at integer positions.
 */
#ifndef CELLCOUNT_H
#define CELLCOUNT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  if defined(CELLCOUNT_BUILDING)
#    define CELLCOUNT_API __declspec(dllexport)
#  else
#    define CELLCOUNT_API __declspec(dllimport)
#  endif
#else
#  define CELLCOUNT_API __attribute__((visibility("default")))
#endif

/* ---------------------------------------------------------------- version */

#define CELLCOUNT_VERSION_MAJOR 0
#define CELLCOUNT_VERSION_MINOR 1
#define CELLCOUNT_VERSION_PATCH 0
#define CELLCOUNT_VERSION_NUMBER \
  (CELLCOUNT_VERSION_MAJOR * 10000 + CELLCOUNT_VERSION_MINOR * 100 + CELLCOUNT_VERSION_PATCH)
#define CELLCOUNT_VERSION_STRING "0.1.0"
/* Bumped on ANY change of a struct layout or a signature. Bindings refuse to run on a mismatch. */
#define CELLCOUNT_ABI_VERSION 2

CELLCOUNT_API uint32_t cellcount_version_number(void);      /* == CELLCOUNT_VERSION_NUMBER */
CELLCOUNT_API const char * cellcount_version_string(void);  /* static storage */
CELLCOUNT_API uint32_t cellcount_abi_version(void);         /* == CELLCOUNT_ABI_VERSION */

/* ---------------------------------------------------------------- status and errors */

/* Values are permanent: never renumber, never reuse. */
typedef enum cellcount_status {
  CELLCOUNT_OK = 0,
  CELLCOUNT_CANCELLED = 1,              /* a progress callback returned non-zero */
  CELLCOUNT_ERR_INVALID_ARGUMENT = 10,  /* NULL, wrong size, NaN pixels, bad box, bad JSON field... */
  CELLCOUNT_ERR_BUFFER_TOO_SMALL = 11,  /* a CALLER-SIZED buffer has too little capacity */
  CELLCOUNT_ERR_UNSUPPORTED = 12,       /* valid request this build or method cannot do */
  CELLCOUNT_ERR_IO = 20,                /* file missing, unreadable, or would be overwritten */
  CELLCOUNT_ERR_MODEL_FORMAT = 21,      /* model.json/weights corrupt, checksum or version mismatch */
  CELLCOUNT_ERR_WRONG_METHOD = 22,      /* unknown method, or the request does not fit the model's method */
  CELLCOUNT_ERR_DATASET = 23,           /* unreadable or inconsistent dataset row */
  CELLCOUNT_ERR_OUT_OF_MEMORY = 30,
  CELLCOUNT_ERR_DEVICE = 31,            /* device string invalid or device not available */
  CELLCOUNT_ERR_INTERNAL = 99
} cellcount_status;

/* Name of a status, e.g. "CELLCOUNT_ERR_IO". Static storage; "CELLCOUNT_UNKNOWN_STATUS" for others. */
CELLCOUNT_API const char * cellcount_status_name(cellcount_status s);

/* Message of the last failed call on this thread ("" if none). Thread-local storage, valid until the
 * next cellcount_* call on this thread. Successful calls do not clear it. */
CELLCOUNT_API const char * cellcount_last_error(void);

/* ---------------------------------------------------------------- logging, threads, strings */

enum { CELLCOUNT_LOG_DEBUG = 0, CELLCOUNT_LOG_INFO = 1, CELLCOUNT_LOG_WARN = 2, CELLCOUNT_LOG_ERROR = 3 };

/* Log sink. May be called from any thread that runs a cellcount call; `msg` is BORROWED. */
typedef void (*cellcount_log_fn)(int32_t level, const char * msg, void * user);

/* Install a log sink (NULL restores the default: stderr). Messages below `min_level` are dropped
 * (default CELLCOUNT_LOG_INFO). Thread-safe. */
CELLCOUNT_API void cellcount_log_set(cellcount_log_fn fn, void * user, int32_t min_level);

/* Progress callback: fraction in [0,1], `stage` BORROWED (e.g. "tile 3/12", "epoch 2/40").
 * Return non-zero to cancel. Runs on the calling thread. */
typedef int32_t (*cellcount_progress_fn)(float fraction, const char * stage, void * user);

/* Number of CPU threads LibTorch uses (0 = one per core). Process-wide.
 * Returns CELLCOUNT_ERR_INVALID_ARGUMENT for n < 0 or n > 256. */
CELLCOUNT_API cellcount_status cellcount_set_num_threads(int32_t n);

/* Frees a string returned through a `char ** out_json` argument. NULL ok. */
CELLCOUNT_API void cellcount_string_free(char * s);

/* Library description as JSON: version, abi, LibTorch version, CUDA availability and devices,
 * threads, built I/O back ends, registered methods with their user-facing names.
 * *out_json is OWNED BY LIBRARY (cellcount_string_free). Statuses: OK, ERR_INVALID_ARGUMENT. */
CELLCOUNT_API cellcount_status cellcount_library_info(char ** out_json);

/* ---------------------------------------------------------------- images and boxes */

typedef enum cellcount_dtype {
  CELLCOUNT_DTYPE_U8 = 1,
  CELLCOUNT_DTYPE_U16 = 2,
  CELLCOUNT_DTYPE_F32 = 3
} cellcount_dtype;

/* A 2-D image, channels interleaved (row-major H x W x C, as numpy and ImageJ hold them).
 * BORROWED: read during the call only, never retained, never written. Stacks go slice by slice. */
typedef struct cellcount_image_view {
  const void * data;         /* first pixel of row 0 */
  int64_t width, height;     /* >= 1 */
  int64_t channels;          /* >= 1 */
  int64_t row_stride_bytes;  /* 0 = tightly packed (width * channels * sizeof(pixel)) */
  int32_t dtype;             /* a cellcount_dtype */
  int32_t reserved;          /* must be 0 */
} cellcount_image_view;

/* An exemplar box in pixel coordinates of the image, x0 < x1, y0 < y1 (half-open [x0,x1) x [y0,y1)). */
typedef struct cellcount_box {
  float x0, y0, x1, y1;
} cellcount_box;

/* ---------------------------------------------------------------- models */

typedef struct cellcount_model cellcount_model;    /* opaque: one method + weights + model.json */
typedef struct cellcount_result cellcount_result;  /* opaque, library-owned */

/* Load a model folder (model.json + weights.pt). Checks method, format version and sha256 of the weights.
 * `path` BORROWED. *out OWNED BY LIBRARY (cellcount_model_free).
 * Statuses: OK, ERR_INVALID_ARGUMENT (NULL), ERR_IO (missing/unreadable), ERR_MODEL_FORMAT (corrupt,
 * checksum or version mismatch), ERR_WRONG_METHOD (method not in this build). */
CELLCOUNT_API cellcount_status cellcount_model_load(const char * path, cellcount_model ** out);

/* NULL ok. */
CELLCOUNT_API void cellcount_model_free(cellcount_model * m);

/* Model description as JSON: method, display name, classes, needs_exemplars, input spec (channels,
 * normalisation), default tile size/overlap, tuned thresholds, provenance, metrics, device in use.
 * Returns NULL if m is NULL. Storage tied to the handle, valid until the next call on it or its free. */
CELLCOUNT_API const char * cellcount_model_info(cellcount_model * m);

/* ---------------------------------------------------------------- prediction */

typedef struct cellcount_predict_params {
  uint32_t struct_size;        /* set by cellcount_predict_default_params(); do not change */
  const char * device;         /* "auto" (default), "cpu", "cuda", "cuda:N"; BORROWED */
  const char * precision;      /* "auto" (default), "fp32", "bf16", "fp16"; BORROWED. "auto": bf16 on
                                  CUDA and on CPUs with AMX or AVX512-BF16, kept for a model only if a
                                  one-time check on its first image (centre 256x256) gives a count within
                                  2 % (or 0.5 cells) of fp32 and runs faster; else fp32.
                                  cellcount_result_precision says which ran. */
  int32_t tile_size;           /* 0 = the model's default; else >= 32 */
  int32_t tile_overlap;        /* -1 = the model's default; else 0 <= overlap < tile_size/2 */
  float peak_threshold;        /* NAN = the model's tuned value */
  float peak_min_distance;     /* NAN = the model's tuned value (pixels) */
  int32_t want_density;        /* 1 (default) = keep the density map in the result */
  int32_t reserved;            /* must be 0 */
  cellcount_progress_fn progress;  /* NULL = none */
  void * progress_user;
  const char * options_json;   /* BORROWED, NULL = defaults: a JSON object of the method's own prediction
                                  options (cellcount_request_options(method, "predict")), e.g.
                                  {"mask_threshold": 0.5} for exemplar. Each option left out takes the
                                  model's value (model.json "thresholds"), else its declared default.
                                  Two generic keys ride here too (cellcount_request_options("", "predict")):
                                  "peak_threshold_relative" (below, measurements) and
                                  "normalization_range": [low, high], raw intensities that map to 0 and 1
                                  in place of the image's own percentiles (info JSON
                                  input.normalization p_low / p_high of all channels the network sees, on
                                  every value or, above 2^20 values, on every ceil(n / 2^20)-th value in
                                  memory order, linearly interpolated), so that the blocks of one large
                                  image, or the planes of a stack, are normalised alike; [] or null = the
                                  image's own; ERR_INVALID_ARGUMENT unless low < high, both finite, and for a
                                  model whose input.normalization.mode is not "percentile". */
} cellcount_predict_params;

/* The only source of the generic prediction defaults (front ends show these). Method-specific options
 * have their defaults and metadata in cellcount_request_defaults / cellcount_request_options(method,
 * "predict"); the generic fields above are described by cellcount_request_options("", "predict"). */
CELLCOUNT_API cellcount_predict_params cellcount_predict_default_params(void);

/* Count (and locate) cells in one 2-D image.
 *  img        BORROWED; uint8/uint16/float32; channels must match the model (RGB models take 3,
 *             grey models take 1; see info JSON "input.channels").
 *  exemplars  BORROWED, n_exemplars boxes; required (n >= 1) when info says needs_exemplars,
 *             else must be NULL/0. Boxes partly outside are clipped with a warning in the log.
 *  region     BORROWED, optional (NULL = whole image): uint8, 1 channel, same size; non-zero = count here.
 *  params     BORROWED, NULL = defaults.
 *  *out       OWNED BY LIBRARY (cellcount_result_free).
 * Limits (ERR_INVALID_ARGUMENT): sides <= 2^20 and width*height <= 2^28 pixels; float pixels |v| <= 1e9;
 * at most 64 exemplar boxes; at most 65536 tiles. A count that would not be finite is refused, never OK.
 * Statuses: OK, CANCELLED, ERR_INVALID_ARGUMENT (NULL, empty or NaN image, wrong dtype/channels/size,
 * bad boxes or params; options_json not a JSON object, an unknown option or a value of the wrong type or
 * out of range, the message naming the option), ERR_UNSUPPORTED (fp16 on CPU), ERR_DEVICE, ERR_OUT_OF_MEMORY,
 * ERR_INTERNAL. */
CELLCOUNT_API cellcount_status cellcount_predict(cellcount_model * m, const cellcount_image_view * img,
                                                 const cellcount_box * exemplars, size_t n_exemplars,
                                                 const cellcount_image_view * region,
                                                 const cellcount_predict_params * params,
                                                 cellcount_result ** out);

/* NULL ok. */
CELLCOUNT_API void cellcount_result_free(cellcount_result * r);

/* Result getters: infallible; a NULL result gives 0 / NULL. */
CELLCOUNT_API double cellcount_result_count(const cellcount_result * r);       /* total count */
CELLCOUNT_API size_t cellcount_result_n_classes(const cellcount_result * r);   /* >= 1 */
CELLCOUNT_API double cellcount_result_class_count(const cellcount_result * r, size_t k); /* 0 if k out of range */
CELLCOUNT_API size_t cellcount_result_n_points(const cellcount_result * r);
CELLCOUNT_API const char * cellcount_result_device(const cellcount_result * r);    /* tied to r, e.g. "cpu" */
CELLCOUNT_API const char * cellcount_result_precision(const cellcount_result * r); /* tied to r */
CELLCOUNT_API double cellcount_result_seconds(const cellcount_result * r);     /* wall time of the predict */

/* Out-of-domain warnings of the prediction (issue 24): a JSON array, tied to r, "[]" when none (NULL for a
 * NULL r). Each entry {"code", "message", "value", "limit"}: the message names what was measured, the model's
 * bound and what to do. Codes:
 *   "intensity_out_of_domain"    the mean of a network input channel (after the model's normalisation) lies
 *                                outside the range seen on the model's train images, widened by its margin
 *                                (another stain, modality or polarity: an H&E image to a fluorescence model);
 *   "cell_density_out_of_domain" the count per 10,000 counted pixels lies outside that range widened by the
 *                                model's factor (cells far smaller or larger than the model knows);
 *   "density_saturated"          the strongest detected peak (a point's score: the density there) exceeds the
 *                                model's limit (twice the strongest on its train images);
 *   "count_points_disagree"      count and detected points differ by more than the model's fraction:
 *                                |count - points| / max(count, points) > count_points_tolerance, when
 *                                max(count, points) >= 10;
 *   "cell_size_out_of_range"     (models with a cell size, option diameter 0) the estimated cell diameter is the
 *                                smallest or largest the estimate tries (6.3 or 50.8 px): the cells may be
 *                                smaller or larger than the model knows;
 *   "cell_size_unknown"          (the same) too few cells to estimate their size: counted at the model's own.
 * The bounds are model.json's "domain" section, fitted on the model's train split and checked on its val split
 * (README, "Out-of-domain warnings"); a model without one is checked for count_points_disagree alone, with the
 * library's tolerance 0.5. They are not logged (a caller shows them with the image's name);
 * cellcount_result_measure's JSON carries the same array as "warnings". */
CELLCOUNT_API const char * cellcount_result_warnings(const cellcount_result * r);

/* Copy the points into CALLER-SIZED arrays of `capacity` points: xy (2 per point, x then y, required),
 * class_ids and scores (each nullable). Statuses: OK, ERR_INVALID_ARGUMENT (NULL r or xy),
 * ERR_BUFFER_TOO_SMALL (capacity < cellcount_result_n_points). */
CELLCOUNT_API cellcount_status cellcount_result_points(const cellcount_result * r, float * xy,
                                                       int32_t * class_ids, float * scores,
                                                       size_t capacity);

typedef enum cellcount_result_image_kind {
  CELLCOUNT_IMAGE_DENSITY = 1,         /* float, 1 channel, image size; sums to the count */
  CELLCOUNT_IMAGE_MASK = 2,            /* float in [0,1], 1 channel: region the method counted in */
  CELLCOUNT_IMAGE_RECONSTRUCTION = 3   /* float, method-specific channels (twinvae, llp) */
} cellcount_result_image_kind;

/* Size of an image held by the result; all zero when the result has none of that kind.
 * Statuses: OK, ERR_INVALID_ARGUMENT (NULL r or NULL out pointers, unknown kind). */
CELLCOUNT_API cellcount_status cellcount_result_image_size(const cellcount_result * r, int32_t kind,
                                                           int64_t * width, int64_t * height,
                                                           int64_t * channels);

/* Copy it into a CALLER-SIZED float buffer of `capacity` floats (row-major H x W x C).
 * Statuses: OK, ERR_INVALID_ARGUMENT (NULL, unknown kind, result has no such image),
 * ERR_BUFFER_TOO_SMALL. */
CELLCOUNT_API cellcount_status cellcount_result_image(const cellcount_result * r, int32_t kind,
                                                      float * dst, size_t capacity);

/* ---------------------------------------------------------------- train, evaluate, synthesize */

/* All three take a JSON request (BORROWED) and return a JSON report (*out_report OWNED BY LIBRARY,
 * cellcount_string_free). The request fields per method are listed by cellcount_request_defaults().
 * Common fields: "method", "dataset" (folder), "split" (file or "auto"), "out" (folder, never
 * overwritten unless "overwrite": true), "device", "seed", "threads".
 * Statuses: OK, CANCELLED (partial work is kept only as checkpoints), ERR_INVALID_ARGUMENT (bad JSON
 * or field), ERR_WRONG_METHOD, ERR_IO, ERR_DATASET, ERR_UNSUPPORTED, ERR_DEVICE, ERR_OUT_OF_MEMORY. */
CELLCOUNT_API cellcount_status cellcount_train(const char * request_json, cellcount_progress_fn progress,
                                               void * progress_user, char ** out_report);
CELLCOUNT_API cellcount_status cellcount_evaluate(const char * request_json, cellcount_progress_fn progress,
                                                  void * progress_user, char ** out_report);
CELLCOUNT_API cellcount_status cellcount_synthesize(const char * request_json, cellcount_progress_fn progress,
                                                    void * progress_user, char ** out_report);

/* Default request of `kind` ("train", "evaluate", "synthesize", "predict") for `method` (e.g. "dcl"), as
 * JSON; the one source of defaults for every front end. "predict" gives the method's own prediction options
 * ({} when it has none), the object cellcount_predict_params.options_json takes (without a "method" key);
 * the other kinds include "method". Method "" gives the generic ones: "predict" the fields of
 * cellcount_predict_params (NAN shown as null), "evaluate" and "synthesize" the core's requests.
 * *out_json OWNED BY LIBRARY. Statuses: OK, ERR_INVALID_ARGUMENT, ERR_WRONG_METHOD, ERR_UNSUPPORTED. */
CELLCOUNT_API cellcount_status cellcount_request_defaults(const char * method, const char * kind,
                                                          char ** out_json);

/* Metadata of every field of the same requests (kinds and method "" as in cellcount_request_defaults), so a
 * front end can build a labelled, validated form: a JSON array in declaration order of
 *   {"name", "type", "default", "doc", "advanced", "nullable"[, "min", "max"][, "choices"]}
 * type: "int", "number", "bool", "string", "choice" (one of "choices"), "path", "int_list", "number_list",
 * "string_list", "object" (merged over its default), "json" (any value, checked by the method). min/max are
 * inclusive bounds of numbers (and of list entries), absent = open; nullable: null means "not given" (the
 * model's value). Fields a method has not yet declared are listed from its defaults with the type of the
 * default value, no range and an empty doc. *out_json OWNED BY LIBRARY.
 * Statuses: OK, ERR_INVALID_ARGUMENT (NULL, unknown kind), ERR_WRONG_METHOD, ERR_UNSUPPORTED (the method has
 * no such request). */
CELLCOUNT_API cellcount_status cellcount_request_options(const char * method, const char * kind,
                                                         char ** out_json);

/* Count metrics and point matching of predictions against ground truth (what cellcount_evaluate reports,
 * for predictions a caller made itself, e.g. a front end counting a folder). Request (BORROWED):
 *   {"predicted": [counts], "truth": [counts]}                       equal lengths, finite numbers
 *   optional "points": [{"predicted": [[x,y],...], "truth": [[x,y],...]}, ...] and "radius" (pixels, > 0)
 * Report: {"n", "mae", "rmse", "nae", "sre", "mre", "accuracy"} (RMSE = sqrt(mean e^2); NAE and SRE over
 * images with a true count > 0), with points also {"radius", "tp", "fp", "fn", "precision", "recall", "f1"}
 * (one-to-one matching within the radius, summed over images). *out_report OWNED BY LIBRARY.
 * Statuses: OK, ERR_INVALID_ARGUMENT (bad JSON, lengths differ, non-finite value, radius <= 0). */
CELLCOUNT_API cellcount_status cellcount_metrics(const char * request_json, char ** out_report);

/* ---------------------------------------------------------------- datasets */

/* A dataset folder's annotations (points.csv, counts.csv, boxes.csv, split.csv) as JSON:
 *   {"root", "classes": [names], "split_source", "samples": [{"image" (relative path), "count" (number or
 *    null), "points": [[x, y, class], ...] (absent when the dataset has no points for it),
 *    "boxes": [[x0, y0, x1, y1], ...], "split" ("train", "val", "test" or "")}, ...]}
 * `dir` BORROWED; `split_file` BORROWED, NULL or "" = dir/split.csv when present. *out_json OWNED BY LIBRARY.
 * Statuses: OK, ERR_INVALID_ARGUMENT (NULL), ERR_IO (no folder, no CSV), ERR_DATASET (bad row: file, line). */
CELLCOUNT_API cellcount_status cellcount_dataset_read(const char * dir, const char * split_file, char ** out_json);

/* Writes a fixed-seed random split of a dataset as a split CSV (image,split). Request (BORROWED):
 *   {"dataset": folder, "out": file, "ratios": [train, test, val] (default [10, 9, 1]), "seed": 0,
 *    "overwrite": false}
 * Report: {"out", "train", "test", "val"} (numbers of images). The file is never overwritten unless
 * "overwrite": true. *out_report OWNED BY LIBRARY.
 * Statuses: OK, ERR_INVALID_ARGUMENT (bad JSON or field), ERR_IO (out exists, unwritable), ERR_DATASET. */
CELLCOUNT_API cellcount_status cellcount_split(const char * request_json, char ** out_report);

/* ---------------------------------------------------------------- image files */

typedef struct cellcount_image cellcount_image;  /* opaque: the planes of one image file, library-owned */

/* 1 if `path` (BORROWED) ends in an extension cellcount_image_read reads (.png .jpg .jpeg .bmp .tif .tiff,
 * any case), else 0 (also for NULL). */
CELLCOUNT_API int32_t cellcount_is_image_file(const char * path);

/* Reads every 2-D plane of an image file: a PNG/JPEG/BMP gives one, a multi-page or 3-D TIFF one per slice.
 * Pixels are held as float32 in the file's own range (uint8 0..255, uint16 0..65535, float as stored),
 * channels interleaved in RGB order, alpha dropped. `path` BORROWED. *out OWNED BY LIBRARY
 * (cellcount_image_free). Statuses: OK, ERR_INVALID_ARGUMENT (NULL), ERR_IO (missing, unreadable,
 * undecodable; the message names the file), ERR_UNSUPPORTED (the format's back end is not built). */
CELLCOUNT_API cellcount_status cellcount_image_read(const char * path, cellcount_image ** out);

/* NULL ok. */
CELLCOUNT_API void cellcount_image_free(cellcount_image * im);

/* Getters: infallible; NULL gives 0. */
CELLCOUNT_API size_t cellcount_image_n_planes(const cellcount_image * im);   /* >= 1 */
CELLCOUNT_API int32_t cellcount_image_source_dtype(const cellcount_image * im); /* the file's cellcount_dtype */

/* A view of plane z (0-based): dtype CELLCOUNT_DTYPE_F32, tightly packed, ready for cellcount_predict.
 * The pixels the view points to are OWNED BY LIBRARY, tied to im: valid until cellcount_image_free(im).
 * Statuses: OK, ERR_INVALID_ARGUMENT (NULL, z out of range). */
CELLCOUNT_API cellcount_status cellcount_image_plane(const cellcount_image * im, size_t z,
                                                     cellcount_image_view * out);

/* Writes an image as PNG, or TIFF by extension (.tif/.tiff). bit_depth 8 or 16: values rounded and
 * clamped to the type; 32: float pixels unchanged (TIFF only). `path`, `img` BORROWED. Never replaces an
 * existing file unless overwrite != 0. Statuses: OK, ERR_INVALID_ARGUMENT (NULL, bad view or bit depth),
 * ERR_IO (exists, unwritable), ERR_UNSUPPORTED (the format's back end is not built). */
CELLCOUNT_API cellcount_status cellcount_image_write(const char * path, const cellcount_image_view * img,
                                                     int32_t bit_depth, int32_t overwrite);

/* Writes an RGB PNG overlay: `img` contrast-stretched (1st-99.8th percentile) with a coloured cross of
 * `radius` pixels at each of the n_points points (xy: 2 floats per point, x then y; class_ids nullable:
 * the colour). All pointers BORROWED. Same overwrite rule and statuses as cellcount_image_write. */
CELLCOUNT_API cellcount_status cellcount_overlay_write(const char * path, const cellcount_image_view * img,
                                                       const float * xy, const int32_t * class_ids,
                                                       size_t n_points, int32_t radius, int32_t overwrite);

/* ---- Measurements beside a count, computed by the library (issue 21) ----
 * The peak threshold as a 0-1 relative value. The library maps a relative value r in [0, 1] to the absolute
 * peak height (density units) on a logarithmic scale over the range the threshold tuner searches
 * (core/peaks peak_threshold_grid): absolute = 0.0002 * (0.5 / 0.0002)^r, so r = 0 keeps nearly every local
 * maximum and r = 1 only peaks of at least 0.5. A model's info JSON
 * (cellcount_model_info) carries "peak_threshold": {"value" (the absolute threshold used when none is
 * given: model.json's tuned one, else the method's default), "relative" (the same on the 0-1 scale),
 * "tuned" (true when model.json has it), "min", "max" (the scale's ends), "rule"}. A prediction takes a
 * relative value as the generic key "peak_threshold_relative" of cellcount_predict_params.options_json
 * (ERR_INVALID_ARGUMENT when outside [0, 1] or given together with params.peak_threshold);
 * cellcount_peak_threshold_convert converts either way. */

/* Converts a peak threshold: to_relative != 0 maps an absolute threshold (>= 0) to the 0-1 scale (values
 * beyond the scale's ends clamp to 0 or 1), to_relative == 0 maps a relative value in [0, 1] to the absolute
 * one. Statuses: OK, ERR_INVALID_ARGUMENT (NULL out, NaN, negative, relative above 1). */
CELLCOUNT_API cellcount_status cellcount_peak_threshold_convert(double value, int32_t to_relative, double * out);

/* Measurements of a result as JSON, computed from what cellcount_predict saw:
 *   request (BORROWED, NULL = {}): {"pixel_width": 1, "pixel_height": 1 (calibrated units per pixel, > 0),
 *     "unit": "pixel" (a name; "pixel", "pixels" or "" = uncalibrated), "points": true (false = leave the
 *     per-point list out: at 8192 x 8192 with 516,743 points it took ~300 MB of the CLI's peak memory)}
 *   report: {"count", "n_points", "counted_pixels" (region or whole image), "area" (counted_pixels x
 *     pixel_width x pixel_height), "unit", "calibrated" (a unit other than "pixel"/"pixels"/"px"/"", or a pixel size other than 1),
 *     "cells_per_unit2" (count / area; null when
 *     uncalibrated or the area is 0), "intensity_radius" (pixels), "points": [{"x", "y", "class", "score",
 *     "intensity" (mean of the original image's pixels, all channels, within intensity_radius of the point,
 *     in the image's own range), "label" (the component of the label image at the point, 0 = none)}, ...],
 *     "labels": {"available" (bool), "n" (components), "source" or "reason" (why there is none)},
 *     "diameter": {"value" (pixels), "source": "given" or "estimated"} for models with a cell size (model.json
 *     cell_diameter; prediction option diameter, 0 = estimated), else null,
 *     "class_fractions": [each class's count / the sum of the class counts, in the model's class order (one per
 *     cellcount_result_n_classes); null for each when that sum is 0],
 *     "warnings" (as cellcount_result_warnings)}
 * *out_json OWNED BY LIBRARY (cellcount_string_free).
 * Statuses: OK, ERR_INVALID_ARGUMENT (NULL, bad JSON, pixel sizes not finite and > 0). */
CELLCOUNT_API cellcount_status cellcount_result_measure(const cellcount_result * r, const char * request_json,
                                                        char ** out_json);

/* The label image where the method gives a mask (exemplar: its segmentation mask > 0.5, split into
 * 8-connected components numbered 1..n in raster order; 0 = background), as int32 row-major H x W into a
 * CALLER-SIZED buffer of `capacity` values (size: cellcount_result_image_size of CELLCOUNT_IMAGE_MASK).
 * Statuses: OK, ERR_INVALID_ARGUMENT (NULL, the result has no mask: the message says why),
 * ERR_BUFFER_TOO_SMALL. */
CELLCOUNT_API cellcount_status cellcount_result_labels(const cellcount_result * r, int32_t * dst, size_t capacity);

/* ---- Export of a model folder as a package for another tool ---- */

/* Writes a model folder as a package for another tool. Request (BORROWED):
 *   {"model": folder, "out": file, "format": "bioimageio", "overwrite": false,
 *    "test_image": image file or "" (default: a synthetic image of the core's cells, "seed" 0),
 *    "exemplars": [[x0, y0, x1, y1], ...] (exemplar models; default: three boxes around synthetic cells),
 *    "size": input side of the exported network (0 = the method's default), "license": SPDX id ("CC-BY-4.0")}
 * "bioimageio": a BioImage Model Zoo model package (spec 0.5, zip of stored files): rdf.yaml, TorchScript
 * weights traced from the model's network, test input/output tensors (.npy), cover.png, README.md and the
 * model's model.json; rdf.yaml gives the sha256 of the weights, test tensors and attachment, README.md of all.
 * Report: {"out", "format", "method", "test_count", "files": [{"name", "bytes", "sha256"}], "inputs"}.
 * `out` is written whole or not at all and never overwritten unless "overwrite": true.
 * *out_report OWNED BY LIBRARY (cellcount_string_free); NULL = not wanted.
 * Statuses: OK, ERR_INVALID_ARGUMENT (bad JSON or field, exemplar outside the test image, test image too small),
 * ERR_IO (out exists or unwritable, model or test image unreadable), ERR_MODEL_FORMAT,
 * ERR_UNSUPPORTED (a method or model that cannot be exported to that format). */
CELLCOUNT_API cellcount_status cellcount_export(const char * request_json, char ** out_report);


#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CELLCOUNT_H */
