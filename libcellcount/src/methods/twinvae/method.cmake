# twinvae: Twin-VAE with synthetic data and transfer between modalities (paper 003, CODE-FACTS section 4).
cellcount_add_method(twinvae
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/twinvae/twinvae_net.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/twinvae/twinvae_render.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/twinvae/twinvae_data.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/twinvae/twinvae_train.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/methods/twinvae/twinvae_method.cpp)
