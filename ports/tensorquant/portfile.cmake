# Header-only: configure and install with the project's own rules (the same steps CI runs:
# cmake -S . -B build -DTENSORQUANT_BUILD_TESTS=OFF ...; cmake --install build), then move
# the config to where vcpkg expects it. Used as an overlay from the repository:
#   vcpkg install tensorquant --overlay-ports=ports
set(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../..")

vcpkg_check_features(OUT_FEATURE_OPTIONS FEATURE_OPTIONS
  FEATURES
    nn TENSORQUANT_WITH_NN
    train TENSORQUANT_WITH_TRAIN
    onnx TENSORQUANT_WITH_ONNX
)

vcpkg_cmake_configure(
  SOURCE_PATH "${SOURCE_PATH}"
  OPTIONS
    ${FEATURE_OPTIONS}
    -DTENSORQUANT_BUILD_TESTS=OFF
    -DTENSORQUANT_BUILD_BENCHMARKS=OFF
    -DTENSORQUANT_BUILD_EXAMPLES=OFF
    -DTENSORQUANT_BUILD_TOOLS=OFF
    -DTENSORQUANT_INSTALL=ON
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(PACKAGE_NAME tensorquant CONFIG_PATH share/cmake/tensorquant)

# header-only: nothing under lib/ or debug/
file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug" "${CURRENT_PACKAGES_DIR}/lib")
file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/share/doc")
file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
