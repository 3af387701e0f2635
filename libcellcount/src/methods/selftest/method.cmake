# A test fixture, not a counting method: a three-layer density network the ABI, binding and plugin tests
# train in seconds on the core's synthetic cells. Hidden from front ends (info "fixture": true).
cellcount_add_method(selftest ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/selftest/selftest_method.cpp)
