/*
 * cellcount_jni.c -- JNI glue between org.cellcount.Native and the C ABI (cellcount.h).
 *
 * Rules kept here:
 *  - Every status is checked; a failure becomes ONE Java exception, org.cellcount.CellCountException,
 *    carrying the status and the library's message. No C++ is compiled here, so nothing can unwind
 *    through the JVM.
 *  - Java arrays are checked against the sizes the C call will read before the call (the library cannot
 *    know a Java array's length), so a wrong size is an exception, never a read past the end.
 *  - Strings cross as UTF-8 byte arrays (decoded in Java), not as JNI "modified UTF-8".
 *  - Callbacks (progress, log) call back into Java; a Java exception thrown there is captured, the native
 *    call is cancelled, and the exception is re-thrown once the native call has returned.
 *  - Pixels are read through Get<Type>ArrayElements and released with JNI_ABORT: nothing is written back
 *    into the caller's arrays.
 */
#include <jni.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellcount/cellcount.h"

/* ---------------------------------------------------------------- cached JVM handles (set in JNI_OnLoad) */

static JavaVM * g_vm;
static jclass g_exception_class;      /* org.cellcount.CellCountException, global ref */
static jmethodID g_exception_ctor;    /* (I[B[B)V: status, status name, message */
static jclass g_progress_class;       /* org.cellcount.Native$ProgressBridge */
static jmethodID g_progress_call;     /* boolean call(float, byte[]) */
static jclass g_log_class;            /* org.cellcount.Native$LogBridge */
static jmethodID g_log_call;          /* void call(int, byte[]) */
static jclass g_params_class;         /* org.cellcount.PredictParams */
static jfieldID g_f_device, g_f_precision, g_f_tile_size, g_f_tile_overlap, g_f_peak_threshold,
    g_f_peak_min_distance, g_f_options_json, g_f_want_density;
static jclass g_byte_array_class, g_short_array_class, g_float_array_class;
static jobject g_log_bridge;          /* global ref, installed once (the Java side keeps one bridge) */

/* Status used for errors found by the shim itself (bad array sizes): the library's own code for them. */
#define SHIM_INVALID CELLCOUNT_ERR_INVALID_ARGUMENT

static jbyteArray to_bytes(JNIEnv * env, const char * s) {
  if (!s) s = "";
  const jsize n = (jsize)strlen(s);
  jbyteArray a = (*env)->NewByteArray(env, n);
  if (a && n) (*env)->SetByteArrayRegion(env, a, 0, n, (const jbyte *)s);
  return a; /* NULL with OutOfMemoryError pending on failure */
}

/* Throws CellCountException(status, name, message) unless an exception is already pending. */
static void throw_status(JNIEnv * env, int status, const char * message) {
  if ((*env)->ExceptionCheck(env)) return;
  jbyteArray name = to_bytes(env, cellcount_status_name((cellcount_status)status));
  jbyteArray msg = name ? to_bytes(env, message) : NULL;
  if (!msg) return;
  jobject e = (*env)->NewObject(env, g_exception_class, g_exception_ctor, (jint)status, name, msg);
  if (e) (*env)->Throw(env, (jthrowable)e);
}

/* malloc'd copy of a C string (strdup is not C99); NULL on failure. */
static char * copy_string(const char * s) {
  const size_t n = strlen(s) + 1;
  char * c = (char *)malloc(n);
  if (c) memcpy(c, s, n);
  return c;
}

/* After a failed library call: copy the thread's last error first (the next cellcount_* call may
 * replace it), then throw. */
static void throw_last(JNIEnv * env, cellcount_status s) {
  const char * last = cellcount_last_error();
  char * copy = last ? copy_string(last) : NULL;
  throw_status(env, (int)s, copy ? copy : "(no message)");
  free(copy);
}

/* UTF-8 copy of a Java byte[] with a terminating NUL; NULL (with an exception pending) on failure. */
static char * cstring(JNIEnv * env, jbyteArray a, const char * what) {
  if (!a) {
    char m[160];
    snprintf(m, sizeof m, "%s is null", what);
    throw_status(env, SHIM_INVALID, m);
    return NULL;
  }
  const jsize n = (*env)->GetArrayLength(env, a);
  char * s = (char *)malloc((size_t)n + 1);
  if (!s) {
    throw_status(env, CELLCOUNT_ERR_OUT_OF_MEMORY, "out of memory copying a string");
    return NULL;
  }
  (*env)->GetByteArrayRegion(env, a, 0, n, (jbyte *)s);
  s[n] = '\0';
  if (strlen(s) != (size_t)n) {
    free(s);
    char m[160];
    snprintf(m, sizeof m, "%s contains a NUL character", what);
    throw_status(env, SHIM_INVALID, m);
    return NULL;
  }
  return s;
}

static jclass global_class(JNIEnv * env, const char * name) {
  jclass c = (*env)->FindClass(env, name);
  if (!c) return NULL;
  jclass g = (jclass)(*env)->NewGlobalRef(env, c);
  (*env)->DeleteLocalRef(env, c);
  return g;
}

JNIEXPORT jint JNICALL JNI_OnLoad(JavaVM * vm, void * reserved) {
  JNIEnv * env = NULL;
  if ((*vm)->GetEnv(vm, (void **)&env, JNI_VERSION_1_8) != JNI_OK) return JNI_ERR;
  g_vm = vm;
  /* Classes are looked up here, with the class loader that loads this library (a plugin class loader in
   * Fiji); lookups from attached threads would only see the system class loader. */
  if (!(g_exception_class = global_class(env, "org/cellcount/CellCountException"))) return JNI_ERR;
  if (!(g_exception_ctor = (*env)->GetMethodID(env, g_exception_class, "<init>", "(I[B[B)V"))) return JNI_ERR;
  if (!(g_progress_class = global_class(env, "org/cellcount/Native$ProgressBridge"))) return JNI_ERR;
  if (!(g_progress_call = (*env)->GetMethodID(env, g_progress_class, "call", "(F[B)Z"))) return JNI_ERR;
  if (!(g_log_class = global_class(env, "org/cellcount/Native$LogBridge"))) return JNI_ERR;
  if (!(g_log_call = (*env)->GetMethodID(env, g_log_class, "call", "(I[B)V"))) return JNI_ERR;
  if (!(g_params_class = global_class(env, "org/cellcount/PredictParams"))) return JNI_ERR;
  if (!(g_f_device = (*env)->GetFieldID(env, g_params_class, "device", "Ljava/lang/String;"))) return JNI_ERR;
  if (!(g_f_precision = (*env)->GetFieldID(env, g_params_class, "precision", "Ljava/lang/String;"))) return JNI_ERR;
  if (!(g_f_tile_size = (*env)->GetFieldID(env, g_params_class, "tileSize", "I"))) return JNI_ERR;
  if (!(g_f_tile_overlap = (*env)->GetFieldID(env, g_params_class, "tileOverlap", "I"))) return JNI_ERR;
  if (!(g_f_peak_threshold = (*env)->GetFieldID(env, g_params_class, "peakThreshold", "F"))) return JNI_ERR;
  if (!(g_f_peak_min_distance = (*env)->GetFieldID(env, g_params_class, "peakMinDistance", "F"))) return JNI_ERR;
  if (!(g_f_options_json = (*env)->GetFieldID(env, g_params_class, "optionsJson", "Ljava/lang/String;"))) return JNI_ERR;
  if (!(g_f_want_density = (*env)->GetFieldID(env, g_params_class, "wantDensity", "Z"))) return JNI_ERR;
  if (!(g_byte_array_class = global_class(env, "[B"))) return JNI_ERR;
  if (!(g_short_array_class = global_class(env, "[S"))) return JNI_ERR;
  if (!(g_float_array_class = global_class(env, "[F"))) return JNI_ERR;
  return JNI_VERSION_1_8;
}

/* ---------------------------------------------------------------- callbacks */

typedef struct progress_ctx {
  JNIEnv * env;        /* env of the thread that made the native call */
  jobject bridge;      /* Native$ProgressBridge or NULL */
  jthrowable error;    /* exception thrown by the Java listener, re-thrown after the call */
  int cancelled;
} progress_ctx;

static int32_t on_progress(float fraction, const char * stage, void * user) {
  progress_ctx * c = (progress_ctx *)user;
  if (c->cancelled || c->error) return 1;
  if (!c->bridge) return 0;
  /* The header promises callbacks on the calling thread; if that ever changed, do not touch Java from a
   * foreign thread with the caller's env: just go on. */
  JNIEnv * env = NULL;
  if ((*g_vm)->GetEnv(g_vm, (void **)&env, JNI_VERSION_1_8) != JNI_OK || env != c->env) return 0;
  jbyteArray s = to_bytes(env, stage);
  jboolean cancel = JNI_TRUE;
  if (s) {
    cancel = (*env)->CallBooleanMethod(env, c->bridge, g_progress_call, (jfloat)fraction, s);
    (*env)->DeleteLocalRef(env, s);
  }
  if ((*env)->ExceptionCheck(env)) {
    c->error = (*env)->ExceptionOccurred(env);
    (*env)->ExceptionClear(env);
    return 1;
  }
  if (cancel) c->cancelled = 1;
  return cancel ? 1 : 0;
}

/* Finishes a call that took a progress_ctx: a listener's exception wins over the library status. */
static int finish(JNIEnv * env, progress_ctx * c, cellcount_status s) {
  if (c->error) {
    (*env)->Throw(env, c->error);
    return 0;
  }
  if (s != CELLCOUNT_OK) {
    throw_last(env, s);
    return 0;
  }
  return 1;
}

static void on_log(int32_t level, const char * msg, void * user) {
  JNIEnv * env = NULL;
  jint r = (*g_vm)->GetEnv(g_vm, (void **)&env, JNI_VERSION_1_8);
  if (r == JNI_EDETACHED) {
    if ((*g_vm)->AttachCurrentThreadAsDaemon(g_vm, (void **)&env, NULL) != JNI_OK) env = NULL;
  } else if (r != JNI_OK) {
    env = NULL;
  }
  /* No JNI call is allowed while an exception is pending (e.g. a listener's, being carried out). */
  if (!env || (*env)->ExceptionCheck(env)) {
    fprintf(stderr, "cellcount: %s\n", msg ? msg : "");
    return;
  }
  if ((*env)->PushLocalFrame(env, 4) != 0) {
    (*env)->ExceptionClear(env);
    return;
  }
  jbyteArray m = to_bytes(env, msg);
  if (m) (*env)->CallVoidMethod(env, (jobject)user, g_log_call, (jint)level, m);
  if ((*env)->ExceptionCheck(env)) (*env)->ExceptionClear(env); /* a log sink must not break the call */
  (*env)->PopLocalFrame(env, NULL);
}

/* ---------------------------------------------------------------- library */

JNIEXPORT jint JNICALL Java_org_cellcount_Native_abiVersion(JNIEnv * env, jclass cls) {
  return (jint)cellcount_abi_version();
}

JNIEXPORT jbyteArray JNICALL Java_org_cellcount_Native_versionString(JNIEnv * env, jclass cls) {
  return to_bytes(env, cellcount_version_string());
}

JNIEXPORT jbyteArray JNICALL Java_org_cellcount_Native_statusName(JNIEnv * env, jclass cls, jint status) {
  return to_bytes(env, cellcount_status_name((cellcount_status)status));
}

/* Takes a library-owned string, returns it as byte[] and frees it. */
static jbyteArray take_string(JNIEnv * env, char * s) {
  jbyteArray a = to_bytes(env, s);
  cellcount_string_free(s);
  return a;
}

/* The answer of a call that gives a library-owned string: that string as byte[] (freed) when s is OK, else
 * the library's error thrown and NULL. */
static jbyteArray string_result(JNIEnv * env, cellcount_status s, char * json) {
  if (s != CELLCOUNT_OK) {
    cellcount_string_free(json);
    throw_last(env, s);
    return NULL;
  }
  return take_string(env, json);
}

JNIEXPORT jbyteArray JNICALL Java_org_cellcount_Native_libraryInfo(JNIEnv * env, jclass cls) {
  char * json = NULL;
  cellcount_status s = cellcount_library_info(&json);
  return string_result(env, s, json);
}

JNIEXPORT void JNICALL Java_org_cellcount_Native_setNumThreads(JNIEnv * env, jclass cls, jint n) {
  cellcount_status s = cellcount_set_num_threads((int32_t)n);
  if (s != CELLCOUNT_OK) throw_last(env, s);
}

JNIEXPORT void JNICALL Java_org_cellcount_Native_logInstall(JNIEnv * env, jclass cls, jobject bridge,
                                                            jint min_level) {
  if (!bridge) {
    cellcount_log_set(NULL, NULL, (int32_t)min_level);
    return;
  }
  /* One bridge for the life of the process (the Java side swaps listeners inside it), so a log call
   * running on another thread never sees a deleted reference. */
  if (!g_log_bridge) {
    g_log_bridge = (*env)->NewGlobalRef(env, bridge);
    if (!g_log_bridge) return;
  }
  cellcount_log_set(on_log, g_log_bridge, (int32_t)min_level);
}

JNIEXPORT jbyteArray JNICALL Java_org_cellcount_Native_requestDefaults(JNIEnv * env, jclass cls, jbyteArray method,
                                                                      jbyteArray kind) {
  char * m = cstring(env, method, "method");
  char * k = m ? cstring(env, kind, "kind") : NULL;
  jbyteArray out = NULL;
  if (m && k) {
    char * json = NULL;
    cellcount_status s = cellcount_request_defaults(m, k, &json);
    out = string_result(env, s, json);
  }
  free(m);
  free(k);
  return out;
}

JNIEXPORT jbyteArray JNICALL Java_org_cellcount_Native_requestOptions(JNIEnv * env, jclass cls, jbyteArray method,
                                                                     jbyteArray kind) {
  char * m = cstring(env, method, "method");
  char * k = m ? cstring(env, kind, "kind") : NULL;
  jbyteArray out = NULL;
  if (m && k) {
    char * json = NULL;
    cellcount_status s = cellcount_request_options(m, k, &json);
    out = string_result(env, s, json);
  }
  free(m);
  free(k);
  return out;
}

/* which: 0 metrics, 1 split. JSON request in, JSON report out; no callback. */
JNIEXPORT jbyteArray JNICALL Java_org_cellcount_Native_jsonCall(JNIEnv * env, jclass cls, jint which,
                                                               jbyteArray request) {
  char * req = cstring(env, request, "request");
  if (!req) return NULL;
  char * report = NULL;
  cellcount_status s;
  switch (which) {
    case 0: s = cellcount_metrics(req, &report); break;
    case 1: s = cellcount_split(req, &report); break;
    default:
      free(req);
      throw_status(env, SHIM_INVALID, "jsonCall: unknown call");
      return NULL;
  }
  free(req);
  return string_result(env, s, report);
}

JNIEXPORT jbyteArray JNICALL Java_org_cellcount_Native_datasetRead(JNIEnv * env, jclass cls, jbyteArray dir,
                                                                  jbyteArray split_file) {
  char * d = cstring(env, dir, "dataset folder");
  if (!d) return NULL;
  char * sf = NULL;
  if (split_file && !(sf = cstring(env, split_file, "split file"))) {
    free(d);
    return NULL;
  }
  char * json = NULL;
  cellcount_status s = cellcount_dataset_read(d, sf, &json);
  free(d);
  free(sf);
  return string_result(env, s, json);
}

JNIEXPORT jboolean JNICALL Java_org_cellcount_Native_isImageFile(JNIEnv * env, jclass cls, jbyteArray path) {
  char * p = cstring(env, path, "path");
  if (!p) return JNI_FALSE;
  const int32_t r = cellcount_is_image_file(p);
  free(p);
  return r ? JNI_TRUE : JNI_FALSE;
}

JNIEXPORT jlong JNICALL Java_org_cellcount_Native_imageRead(JNIEnv * env, jclass cls, jbyteArray path) {
  char * p = cstring(env, path, "image path");
  if (!p) return 0;
  cellcount_image * im = NULL;
  cellcount_status s = cellcount_image_read(p, &im);
  free(p);
  if (s != CELLCOUNT_OK) {
    throw_last(env, s);
    return 0;
  }
  return (jlong)(intptr_t)im;
}

JNIEXPORT void JNICALL Java_org_cellcount_Native_imageFree(JNIEnv * env, jclass cls, jlong im) {
  cellcount_image_free((cellcount_image *)(intptr_t)im);
}

JNIEXPORT jint JNICALL Java_org_cellcount_Native_imageNumPlanes(JNIEnv * env, jclass cls, jlong im) {
  return (jint)cellcount_image_n_planes((const cellcount_image *)(intptr_t)im);
}

/* {width, height, channels} of plane z. */
JNIEXPORT jlongArray JNICALL Java_org_cellcount_Native_imagePlaneSize(JNIEnv * env, jclass cls, jlong im, jint z) {
  cellcount_image_view v;
  cellcount_status s = cellcount_image_plane((const cellcount_image *)(intptr_t)im, (size_t)(z < 0 ? SIZE_MAX : (size_t)z), &v);
  if (s != CELLCOUNT_OK) {
    throw_last(env, s);
    return NULL;
  }
  jlong wh[3] = {(jlong)v.width, (jlong)v.height, (jlong)v.channels};
  jlongArray a = (*env)->NewLongArray(env, 3);
  if (a) (*env)->SetLongArrayRegion(env, a, 0, 3, wh);
  return a;
}

/* The float pixels of plane z (H x W x C), copied. */
JNIEXPORT jfloatArray JNICALL Java_org_cellcount_Native_imagePlane(JNIEnv * env, jclass cls, jlong im, jint z) {
  cellcount_image_view v;
  cellcount_status s = cellcount_image_plane((const cellcount_image *)(intptr_t)im, (size_t)(z < 0 ? SIZE_MAX : (size_t)z), &v);
  if (s != CELLCOUNT_OK) {
    throw_last(env, s);
    return NULL;
  }
  const uint64_t n = (uint64_t)v.width * (uint64_t)v.height * (uint64_t)v.channels;
  if (n > (uint64_t)INT32_MAX) {
    throw_status(env, SHIM_INVALID, "image plane: more pixels than a Java array holds");
    return NULL;
  }
  jfloatArray a = (*env)->NewFloatArray(env, (jsize)n);
  if (a) (*env)->SetFloatArrayRegion(env, a, 0, (jsize)n, (const jfloat *)v.data);
  return a;
}

/* which: 0 train, 1 evaluate, 2 synthesize, 3 export (no progress). */
JNIEXPORT jbyteArray JNICALL Java_org_cellcount_Native_request(JNIEnv * env, jclass cls, jint which,
                                                              jbyteArray request, jobject bridge) {
  char * req = cstring(env, request, "request");
  if (!req) return NULL;
  progress_ctx ctx = {env, bridge, NULL, 0};
  char * report = NULL;
  cellcount_status s;
  switch (which) {
    case 0: s = cellcount_train(req, on_progress, &ctx, &report); break;
    case 1: s = cellcount_evaluate(req, on_progress, &ctx, &report); break;
    case 2: s = cellcount_synthesize(req, on_progress, &ctx, &report); break;
    case 3: s = cellcount_export(req, &report); break;
    default:
      free(req);
      throw_status(env, SHIM_INVALID, "request: unknown kind of request");
      return NULL;
  }
  free(req);
  if (!finish(env, &ctx, s)) {
    cellcount_string_free(report);
    return NULL;
  }
  return take_string(env, report);
}

/* ---------------------------------------------------------------- models */

JNIEXPORT jlong JNICALL Java_org_cellcount_Native_modelLoad(JNIEnv * env, jclass cls, jbyteArray path) {
  char * p = cstring(env, path, "model path");
  if (!p) return 0;
  cellcount_model * m = NULL;
  cellcount_status s = cellcount_model_load(p, &m);
  free(p);
  if (s != CELLCOUNT_OK) {
    throw_last(env, s);
    return 0;
  }
  return (jlong)(intptr_t)m;
}

JNIEXPORT void JNICALL Java_org_cellcount_Native_modelFree(JNIEnv * env, jclass cls, jlong model) {
  cellcount_model_free((cellcount_model *)(intptr_t)model);
}

JNIEXPORT jbyteArray JNICALL Java_org_cellcount_Native_modelInfo(JNIEnv * env, jclass cls, jlong model) {
  if (!model) {
    throw_status(env, SHIM_INVALID, "model is closed");
    return NULL;
  }
  const char * info = cellcount_model_info((cellcount_model *)(intptr_t)model);
  if (!info) {
    throw_last(env, CELLCOUNT_ERR_INTERNAL);
    return NULL;
  }
  return to_bytes(env, info);
}

JNIEXPORT void JNICALL Java_org_cellcount_Native_defaultParams(JNIEnv * env, jclass cls, jobject params) {
  if (!params) {
    throw_status(env, SHIM_INVALID, "params is null");
    return;
  }
  const cellcount_predict_params p = cellcount_predict_default_params();
  jstring device = (*env)->NewStringUTF(env, p.device ? p.device : "");
  if (!device) return;
  jstring precision = (*env)->NewStringUTF(env, p.precision ? p.precision : "");
  if (!precision) return;
  (*env)->SetObjectField(env, params, g_f_device, device);
  (*env)->SetObjectField(env, params, g_f_precision, precision);
  (*env)->SetIntField(env, params, g_f_tile_size, p.tile_size);
  (*env)->SetIntField(env, params, g_f_tile_overlap, p.tile_overlap);
  (*env)->SetFloatField(env, params, g_f_peak_threshold, p.peak_threshold);
  (*env)->SetFloatField(env, params, g_f_peak_min_distance, p.peak_min_distance);
  (*env)->SetObjectField(env, params, g_f_options_json, NULL); /* NULL = the method's defaults */
  (*env)->SetBooleanField(env, params, g_f_want_density, p.want_density ? JNI_TRUE : JNI_FALSE);
}

/* Reads a String field as a NUL-terminated copy; NULL field gives NULL (the library's default). */
static int string_field(JNIEnv * env, jobject obj, jfieldID f, char ** out) {
  *out = NULL;
  jstring s = (jstring)(*env)->GetObjectField(env, obj, f);
  if (!s) return 1;
  const char * u = (*env)->GetStringUTFChars(env, s, NULL);
  if (!u) return 0;
  *out = copy_string(u);
  (*env)->ReleaseStringUTFChars(env, s, u);
  (*env)->DeleteLocalRef(env, s);
  if (!*out) {
    throw_status(env, CELLCOUNT_ERR_OUT_OF_MEMORY, "out of memory");
    return 0;
  }
  return 1;
}

JNIEXPORT jlong JNICALL Java_org_cellcount_Native_predict(JNIEnv * env, jclass cls, jlong model, jobject pixels,
                                                         jint dtype, jlong width, jlong height, jlong channels,
                                                         jfloatArray boxes, jbyteArray region, jobject params,
                                                         jobject bridge) {
  char msg[256];
  if (!model) {
    throw_status(env, SHIM_INVALID, "predict: the model is closed");
    return 0;
  }
  if (!pixels || !params) {
    throw_status(env, SHIM_INVALID, "predict: pixels and params must not be null");
    return 0;
  }
  if (width < 1 || height < 1 || channels < 1 || width > INT32_MAX || height > INT32_MAX || channels > 4096) {
    snprintf(msg, sizeof msg, "predict: bad image size %lld x %lld x %lld (expected >= 1 each)",
             (long long)width, (long long)height, (long long)channels);
    throw_status(env, SHIM_INVALID, msg);
    return 0;
  }
  const uint64_t need = (uint64_t)width * (uint64_t)height * (uint64_t)channels;
  jclass want = dtype == CELLCOUNT_DTYPE_U8    ? g_byte_array_class
                : dtype == CELLCOUNT_DTYPE_U16 ? g_short_array_class
                : dtype == CELLCOUNT_DTYPE_F32 ? g_float_array_class
                                               : NULL;
  if (!want || !(*env)->IsInstanceOf(env, pixels, want)) {
    snprintf(msg, sizeof msg, "predict: dtype %d needs a %s", (int)dtype,
             dtype == CELLCOUNT_DTYPE_U8 ? "byte[]" : dtype == CELLCOUNT_DTYPE_U16 ? "short[]"
             : dtype == CELLCOUNT_DTYPE_F32 ? "float[]" : "known dtype (1 u8, 2 u16, 3 f32)");
    throw_status(env, SHIM_INVALID, msg);
    return 0;
  }
  const jsize have = (*env)->GetArrayLength(env, (jarray)pixels);
  if ((uint64_t)have < need) {
    snprintf(msg, sizeof msg, "predict: pixel array holds %lld values, %lld x %lld x %lld needs %llu",
             (long long)have, (long long)width, (long long)height, (long long)channels,
             (unsigned long long)need);
    throw_status(env, SHIM_INVALID, msg);
    return 0;
  }
  /* Exemplar boxes: x0, y0, x1, y1 per box. */
  cellcount_box * bx = NULL;
  size_t n_boxes = 0;
  if (boxes) {
    const jsize nb = (*env)->GetArrayLength(env, boxes);
    if (nb % 4 != 0) {
      snprintf(msg, sizeof msg, "predict: boxes hold %d floats, expected 4 per box", (int)nb);
      throw_status(env, SHIM_INVALID, msg);
      return 0;
    }
    n_boxes = (size_t)nb / 4;
    if (n_boxes) {
      float * f = (float *)malloc(sizeof(float) * (size_t)nb);
      bx = (cellcount_box *)malloc(sizeof(cellcount_box) * n_boxes);
      if (!f || !bx) {
        free(f);
        free(bx);
        throw_status(env, CELLCOUNT_ERR_OUT_OF_MEMORY, "out of memory");
        return 0;
      }
      (*env)->GetFloatArrayRegion(env, boxes, 0, nb, f);
      for (size_t i = 0; i < n_boxes; ++i) {
        bx[i].x0 = f[4 * i];
        bx[i].y0 = f[4 * i + 1];
        bx[i].x1 = f[4 * i + 2];
        bx[i].y1 = f[4 * i + 3];
      }
      free(f);
    }
  }
  if (region && (uint64_t)(*env)->GetArrayLength(env, region) != (uint64_t)width * (uint64_t)height) {
    snprintf(msg, sizeof msg, "predict: region mask holds %d values, expected width x height = %lld",
             (int)(*env)->GetArrayLength(env, region), (long long)(width * height));
    free(bx);
    throw_status(env, SHIM_INVALID, msg);
    return 0;
  }
  cellcount_predict_params p = cellcount_predict_default_params();
  char * device = NULL;
  char * precision = NULL;
  char * options = NULL;
  if (!string_field(env, params, g_f_device, &device) || !string_field(env, params, g_f_precision, &precision) ||
      !string_field(env, params, g_f_options_json, &options)) {
    free(device);
    free(precision);
    free(bx);
    return 0;
  }
  if (device) p.device = device;
  if (precision) p.precision = precision;
  p.options_json = options; /* NULL = the method's defaults */
  p.tile_size = (*env)->GetIntField(env, params, g_f_tile_size);
  p.tile_overlap = (*env)->GetIntField(env, params, g_f_tile_overlap);
  p.peak_threshold = (*env)->GetFloatField(env, params, g_f_peak_threshold);
  p.peak_min_distance = (*env)->GetFloatField(env, params, g_f_peak_min_distance);
  p.want_density = (*env)->GetBooleanField(env, params, g_f_want_density) ? 1 : 0;
  progress_ctx ctx = {env, bridge, NULL, 0};
  p.progress = on_progress;
  p.progress_user = &ctx;

  void * data = NULL;
  switch (dtype) {
    case CELLCOUNT_DTYPE_U8: data = (*env)->GetByteArrayElements(env, (jbyteArray)pixels, NULL); break;
    case CELLCOUNT_DTYPE_U16: data = (*env)->GetShortArrayElements(env, (jshortArray)pixels, NULL); break;
    default: data = (*env)->GetFloatArrayElements(env, (jfloatArray)pixels, NULL); break;
  }
  jbyte * mask = NULL;
  if (data && region) mask = (*env)->GetByteArrayElements(env, region, NULL);
  cellcount_result * result = NULL;
  cellcount_status s = CELLCOUNT_ERR_OUT_OF_MEMORY;
  if (data && (!region || mask)) {
    cellcount_image_view img = {data, width, height, channels, 0, dtype, 0};
    cellcount_image_view reg = {mask, width, height, 1, 0, CELLCOUNT_DTYPE_U8, 0};
    s = cellcount_predict((cellcount_model *)(intptr_t)model, &img, bx, n_boxes, region ? &reg : NULL, &p, &result);
  }
  if (mask) (*env)->ReleaseByteArrayElements(env, region, mask, JNI_ABORT);
  if (data) {
    switch (dtype) {
      case CELLCOUNT_DTYPE_U8: (*env)->ReleaseByteArrayElements(env, (jbyteArray)pixels, data, JNI_ABORT); break;
      case CELLCOUNT_DTYPE_U16: (*env)->ReleaseShortArrayElements(env, (jshortArray)pixels, data, JNI_ABORT); break;
      default: (*env)->ReleaseFloatArrayElements(env, (jfloatArray)pixels, data, JNI_ABORT); break;
    }
  }
  free(device);
  free(precision);
  free(options);
  free(bx);
  if (!data || (region && !mask)) {
    /* Get*ArrayElements failed: an OutOfMemoryError is pending. */
    cellcount_result_free(result);
    return 0;
  }
  if (!finish(env, &ctx, s)) {
    cellcount_result_free(result);
    return 0;
  }
  return (jlong)(intptr_t)result;
}

/* ---------------------------------------------------------------- results */

#define RESULT(r) ((const cellcount_result *)(intptr_t)(r))

JNIEXPORT void JNICALL Java_org_cellcount_Native_resultFree(JNIEnv * env, jclass cls, jlong r) {
  cellcount_result_free((cellcount_result *)(intptr_t)r);
}

JNIEXPORT jdouble JNICALL Java_org_cellcount_Native_resultCount(JNIEnv * env, jclass cls, jlong r) {
  return cellcount_result_count(RESULT(r));
}

JNIEXPORT jdouble JNICALL Java_org_cellcount_Native_resultSeconds(JNIEnv * env, jclass cls, jlong r) {
  return cellcount_result_seconds(RESULT(r));
}

JNIEXPORT jbyteArray JNICALL Java_org_cellcount_Native_resultDevice(JNIEnv * env, jclass cls, jlong r) {
  return to_bytes(env, cellcount_result_device(RESULT(r)));
}

JNIEXPORT jbyteArray JNICALL Java_org_cellcount_Native_resultPrecision(JNIEnv * env, jclass cls, jlong r) {
  return to_bytes(env, cellcount_result_precision(RESULT(r)));
}

JNIEXPORT jdoubleArray JNICALL Java_org_cellcount_Native_resultClassCounts(JNIEnv * env, jclass cls, jlong r) {
  const size_t n = cellcount_result_n_classes(RESULT(r));
  if (n > (size_t)INT32_MAX) {
    throw_status(env, CELLCOUNT_ERR_INTERNAL, "result: too many classes");
    return NULL;
  }
  jdoubleArray a = (*env)->NewDoubleArray(env, (jsize)n);
  if (!a) return NULL;
  for (size_t k = 0; k < n; ++k) {
    const jdouble v = cellcount_result_class_count(RESULT(r), k);
    (*env)->SetDoubleArrayRegion(env, a, (jsize)k, 1, &v);
  }
  return a;
}

JNIEXPORT jint JNICALL Java_org_cellcount_Native_resultNumPoints(JNIEnv * env, jclass cls, jlong r) {
  const size_t n = cellcount_result_n_points(RESULT(r));
  if (n > (size_t)(INT32_MAX / 2)) {
    throw_status(env, CELLCOUNT_ERR_INTERNAL, "result: too many points for Java arrays");
    return 0;
  }
  return (jint)n;
}

/* Fills xy (2n), classes (n) and scores (n), each at least as long as the result's point count. */
JNIEXPORT void JNICALL Java_org_cellcount_Native_resultPoints(JNIEnv * env, jclass cls, jlong r, jfloatArray xy,
                                                             jintArray classes, jfloatArray scores) {
  const size_t n = cellcount_result_n_points(RESULT(r));
  if (!xy || !classes || !scores || (size_t)(*env)->GetArrayLength(env, xy) < 2 * n ||
      (size_t)(*env)->GetArrayLength(env, classes) < n || (size_t)(*env)->GetArrayLength(env, scores) < n) {
    throw_status(env, SHIM_INVALID, "result_points: arrays missing or shorter than the point count");
    return;
  }
  if (n == 0) return;
  float * cxy = (float *)malloc(sizeof(float) * 2 * n);
  int32_t * ccls = (int32_t *)malloc(sizeof(int32_t) * n);
  float * csc = (float *)malloc(sizeof(float) * n);
  if (!cxy || !ccls || !csc) {
    throw_status(env, CELLCOUNT_ERR_OUT_OF_MEMORY, "out of memory");
  } else {
    cellcount_status s = cellcount_result_points(RESULT(r), cxy, ccls, csc, n);
    if (s != CELLCOUNT_OK) {
      throw_last(env, s);
    } else {
      (*env)->SetFloatArrayRegion(env, xy, 0, (jsize)(2 * n), cxy);
      (*env)->SetIntArrayRegion(env, classes, 0, (jsize)n, (const jint *)ccls);
      (*env)->SetFloatArrayRegion(env, scores, 0, (jsize)n, csc);
    }
  }
  free(cxy);
  free(ccls);
  free(csc);
}

/* {width, height, channels}; all 0 when the result has no image of that kind. */
JNIEXPORT jlongArray JNICALL Java_org_cellcount_Native_resultImageSize(JNIEnv * env, jclass cls, jlong r, jint kind) {
  int64_t w = 0, h = 0, c = 0;
  cellcount_status s = cellcount_result_image_size(RESULT(r), kind, &w, &h, &c);
  if (s != CELLCOUNT_OK) {
    throw_last(env, s);
    return NULL;
  }
  jlongArray a = (*env)->NewLongArray(env, 3);
  if (!a) return NULL;
  const jlong v[3] = {w, h, c};
  (*env)->SetLongArrayRegion(env, a, 0, 3, v);
  return a;
}

/* The image as float[] (row-major H x W x C), or null when the result has none of that kind. */
JNIEXPORT jfloatArray JNICALL Java_org_cellcount_Native_resultImage(JNIEnv * env, jclass cls, jlong r, jint kind) {
  int64_t w = 0, h = 0, c = 0;
  cellcount_status s = cellcount_result_image_size(RESULT(r), kind, &w, &h, &c);
  if (s != CELLCOUNT_OK) {
    throw_last(env, s);
    return NULL;
  }
  if (w <= 0 || h <= 0 || c <= 0) return NULL;
  const uint64_t n = (uint64_t)w * (uint64_t)h * (uint64_t)c;
  if (n > (uint64_t)INT32_MAX) {
    throw_status(env, CELLCOUNT_ERR_UNSUPPORTED, "result image too large for a Java array (> 2^31 values)");
    return NULL;
  }
  jfloatArray a = (*env)->NewFloatArray(env, (jsize)n);
  if (!a) return NULL;
  jfloat * dst = (*env)->GetFloatArrayElements(env, a, NULL);
  if (!dst) return NULL;
  s = cellcount_result_image(RESULT(r), kind, dst, (size_t)n);
  (*env)->ReleaseFloatArrayElements(env, a, dst, 0);
  if (s != CELLCOUNT_OK) {
    throw_last(env, s);
    return NULL;
  }
  return a;
}

/* ---- cellcount.h, measurements: measurements of a result, its label image, the 0-1 peak threshold scale */

JNIEXPORT jdouble JNICALL Java_org_cellcount_Native_peakThresholdConvert(JNIEnv * env, jclass cls, jdouble value,
                                                                        jboolean toRelative) {
  double out = 0;
  cellcount_status s = cellcount_peak_threshold_convert(value, toRelative ? 1 : 0, &out);
  if (s != CELLCOUNT_OK) throw_last(env, s);
  return out;
}

JNIEXPORT jbyteArray JNICALL Java_org_cellcount_Native_resultMeasure(JNIEnv * env, jclass cls, jlong r,
                                                                    jbyteArray request) {
  char * req = request ? cstring(env, request, "request") : NULL;
  if (request && !req) return NULL;
  char * json = NULL;
  cellcount_status s = cellcount_result_measure(RESULT(r), req, &json);
  free(req);
  return string_result(env, s, json);
}

/* The label image as int[] (row-major H x W, size of the mask), or null when the method gives no mask. */
JNIEXPORT jintArray JNICALL Java_org_cellcount_Native_resultLabels(JNIEnv * env, jclass cls, jlong r) {
  int64_t w = 0, h = 0, c = 0;
  cellcount_status s = cellcount_result_image_size(RESULT(r), CELLCOUNT_IMAGE_MASK, &w, &h, &c);
  if (s != CELLCOUNT_OK) {
    throw_last(env, s);
    return NULL;
  }
  if (w <= 0 || h <= 0) return NULL;
  const uint64_t n = (uint64_t)w * (uint64_t)h;
  if (n > (uint64_t)INT32_MAX) {
    throw_status(env, CELLCOUNT_ERR_UNSUPPORTED, "label image too large for a Java array (> 2^31 values)");
    return NULL;
  }
  jintArray a = (*env)->NewIntArray(env, (jsize)n);
  if (!a) return NULL;
  jint * dst = (*env)->GetIntArrayElements(env, a, NULL);
  if (!dst) return NULL;
  s = cellcount_result_labels(RESULT(r), (int32_t *)dst, (size_t)n);
  (*env)->ReleaseIntArrayElements(env, a, dst, 0);
  if (s != CELLCOUNT_OK) {
    throw_last(env, s);
    return NULL;
  }
  return a;
}
