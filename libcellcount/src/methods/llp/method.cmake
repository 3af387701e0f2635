# llp: Deep Sparse Detector trained from class proportions with the Vertex Proportion loss (paper 002).
cellcount_add_method(llp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/llp/vp_solver.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/llp/llp_loss.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/llp/llp_transform.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/llp/llp_net.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/llp/llp_synth.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/llp/llp_method.cpp)
