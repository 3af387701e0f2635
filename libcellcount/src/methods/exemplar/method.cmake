# exemplar: seg-then-count with pseudo-labelled masks (paper 001).
cellcount_add_method(exemplar
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/exemplar/exemplar_net.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/exemplar/masks.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/exemplar/exemplar_predict.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/exemplar/exemplar_data.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/exemplar/exemplar_train.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/exemplar/exemplar_eval.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/exemplar/exemplar_export.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/exemplar/exemplar_method.cpp)
