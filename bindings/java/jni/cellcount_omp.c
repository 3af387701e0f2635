/* libcellcount_omp: OpenMP's wait policy for a JVM host, set before libgomp is loaded (issue 21).
 *
 * LibTorch's libgomp reads OMP_WAIT_POLICY once, in its constructor, when libcellcount_jni pulls it in.
 * Unset, its workers spin for 300000 iterations after each parallel region; on a busy machine the spinning
 * threads take the cores from the ones with work (a 256x256 count in Fiji: 6-21 s instead of about 1 s).
 * Java cannot change its own environment, so NativeLoader loads this library, which needs nothing but libc
 * and has no JNI function, just before libcellcount_jni; its constructor asks for passive waiting unless
 * the user set the variable (setenv's 0 keeps it). The CLI and the Python binding do the same. If libgomp
 * is already in the process (another plugin loaded it first), this is too late and changes nothing. */
#define _POSIX_C_SOURCE 200112L
#include <stdlib.h>

__attribute__((constructor)) static void cellcount_omp_defaults(void) {
  setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
}
