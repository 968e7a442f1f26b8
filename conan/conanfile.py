# Conan 2 recipe: `conan create conan/` from the repository root. A header-only package
# whose consumers use the project's own tensorquantConfig.cmake (find_package with
# components core, nn, train, onnx), so CMakeDeps generates nothing for it.
import os

from conan import ConanFile
from conan.errors import ConanInvalidConfiguration
from conan.tools.cmake import CMake, CMakeDeps, CMakeToolchain, cmake_layout
from conan.tools.files import copy

required_conan_version = ">=2.0"


class TensorquantConan(ConanFile):
    name = "tensorquant"
    version = "0.1.0"
    description = "Bit-exact emulation of low-precision arithmetic for deep neural networks (C++20, header-only)"
    license = "BSD-3-Clause"
    topics = ("quantization", "fixed-point", "low-precision", "deep-learning", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    options = {"nn": [True, False], "train": [True, False], "onnx": [True, False]}
    default_options = {"nn": True, "train": True, "onnx": False}
    no_copy_source = True

    def export_sources(self):
        # the recipe lives in conan/; the sources are the repository around it
        root = os.path.join(self.recipe_folder, "..")
        copy(self, "CMakeLists.txt", root, self.export_sources_folder)
        copy(self, "LICENSE", root, self.export_sources_folder)
        copy(self, "include/*", root, self.export_sources_folder)
        copy(self, "cmake/*", root, self.export_sources_folder)

    def validate(self):
        if self.options.train and not self.options.nn:
            raise ConanInvalidConfiguration("tensorquant: the train component needs nn (-o tensorquant/*:nn=True)")
        if self.options.onnx and not self.options.nn:
            raise ConanInvalidConfiguration("tensorquant: the onnx component needs nn (-o tensorquant/*:nn=True)")

    def layout(self):
        cmake_layout(self)

    def requirements(self):
        # Conan Center names; the versions are those xtensor/0.24.3 itself requires, so the
        # graph has one of each
        self.requires("xtensor/0.24.3")
        self.requires("xsimd/8.1.0")
        self.requires("xtl/0.7.4")
        if self.options.nn:
            self.requires("nlohmann_json/3.10.5")
        if self.options.train:
            self.requires("zlib/[>=1.2.11 <2]")
        if self.options.onnx:
            self.requires("onnx/1.12.0")
            self.requires("protobuf/3.21.12")

    def package_id(self):
        self.info.clear()  # header-only: one package for every configuration

    def generate(self):
        tc = CMakeToolchain(self)
        tc.cache_variables["TENSORQUANT_BUILD_TESTS"] = False
        tc.cache_variables["TENSORQUANT_BUILD_BENCHMARKS"] = False
        tc.cache_variables["TENSORQUANT_BUILD_EXAMPLES"] = False
        tc.cache_variables["TENSORQUANT_BUILD_TOOLS"] = False  # the library only; the program installs from source
        tc.cache_variables["TENSORQUANT_INSTALL"] = True
        tc.cache_variables["TENSORQUANT_WITH_NN"] = bool(self.options.nn)
        tc.cache_variables["TENSORQUANT_WITH_TRAIN"] = bool(self.options.train)
        tc.cache_variables["TENSORQUANT_WITH_ONNX"] = "ON" if self.options.onnx else "OFF"
        tc.generate()
        CMakeDeps(self).generate()

    def build(self):
        cmake = CMake(self)
        cmake.configure()

    def package(self):
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))
        cmake = CMake(self)
        cmake.install()

    def package_info(self):
        # consumers load share/cmake/tensorquant/tensorquantConfig.cmake, not a generated one
        self.cpp_info.set_property("cmake_find_mode", "none")
        self.cpp_info.builddirs.append(os.path.join("share", "cmake", "tensorquant"))
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        # the same components as the CMake package, for the other generators
        core = self.cpp_info.components["core"]
        core.requires = ["xtensor::xtensor", "xsimd::xsimd", "xtl::xtl"]
        core.bindirs = []
        core.libdirs = []
        if self.options.nn:
            nn = self.cpp_info.components["nn"]
            nn.requires = ["core", "nlohmann_json::nlohmann_json"]
            nn.bindirs = []
            nn.libdirs = []
        if self.options.train:
            train = self.cpp_info.components["train"]
            train.requires = ["nn", "zlib::zlib"]
            train.system_libs = ["pthread"] if self.settings.os in ("Linux", "FreeBSD") else []
            train.bindirs = []
            train.libdirs = []
        if self.options.onnx:
            onnx = self.cpp_info.components["onnx"]
            onnx.requires = ["nn", "onnx::onnx_proto", "protobuf::libprotobuf"]
            onnx.bindirs = []
            onnx.libdirs = []
