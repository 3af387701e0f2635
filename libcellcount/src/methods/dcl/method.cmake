# dcl: Decoupling Counting and Localization (paper 000).
cellcount_add_method(dcl
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/dcl/dcl_net.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/dcl/dcl_crops.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/dcl/dcl_predict.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/dcl/dcl_export.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/dcl/dcl_train.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/dcl/dcl_method.cpp)
