#!/usr/bin/env python3
"""Checks what can be checked of the Conan recipe and the vcpkg port without Conan or vcpkg:
that both are well formed, that their versions equal project(VERSION) in CMakeLists.txt,
and that their dependencies are the ones CMakeLists.txt finds, component by component.

  check_packaging.py                 check, print a summary, exit 1 on any problem
  check_packaging.py --port-options  print the CMake options the vcpkg portfile passes
  check_packaging.py --conan-options print the CMake cache variables the recipe sets
"""
import ast
import json
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
problems = []


def problem(text):
    problems.append(text)


def cmake_version():
    text = (root / "CMakeLists.txt").read_text()
    m = re.search(r"project\(\s*tensorquant\s+VERSION\s+([0-9.]+)", text)
    if not m:
        sys.exit("CMakeLists.txt: no project(tensorquant VERSION ...)")
    return m.group(1)


def cmake_dependencies():
    """{component: [find_package names]} from CMakeLists.txt: the unconditional ones are
    core's, those inside if(TENSORQUANT_WITH_NN) nn's, if(TENSORQUANT_WITH_TRAIN) train's,
    if(TENSORQUANT_WITH_ONNX) onnx's (ifs nested in those belong to the same block)."""
    deps = {"core": [], "nn": [], "train": [], "onnx": []}
    block, depth = "core", 0
    for line in (root / "CMakeLists.txt").read_text().splitlines():
        line = line.strip()
        opened = re.match(r"if\(TENSORQUANT_WITH_(NN|TRAIN|ONNX)\)", line)
        if depth == 0 and opened:
            block, depth = opened.group(1).lower(), 1
        elif depth > 0 and line.startswith("if("):
            depth += 1
        elif depth > 0 and line.startswith("endif()"):
            depth -= 1
            if depth == 0:
                block = "core"
        m = re.match(r"find_package\((\w+)", line)
        if m and m.group(1) not in ("PackageHandleStandardArgs",):
            if m.group(1) not in deps[block]:
                deps[block].append(m.group(1))
    return deps


# CMake package names -> Conan Center and vcpkg names (Threads is the system's)
conan_names = {"xtl": "xtl", "xsimd": "xsimd", "xtensor": "xtensor", "nlohmann_json": "nlohmann_json", "ZLIB": "zlib",
               "Protobuf": "protobuf", "ONNX": "onnx"}
vcpkg_names = {"xtl": "xtl", "xsimd": "xsimd", "xtensor": "xtensor", "nlohmann_json": "nlohmann-json", "ZLIB": "zlib",
               "Protobuf": "protobuf", "ONNX": "onnx"}


def literal_strings(node):
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def check_conan(version, deps):
    path = root / "conan" / "conanfile.py"
    source = path.read_text()
    tree = ast.parse(source, str(path))
    classes = [c for c in tree.body if isinstance(c, ast.ClassDef)]
    if len(classes) != 1:
        return problem(f"{path}: expected one recipe class")
    recipe = classes[0]
    attributes = {}
    methods = {}
    for item in recipe.body:
        if isinstance(item, ast.Assign) and len(item.targets) == 1 and isinstance(item.targets[0], ast.Name):
            try:
                attributes[item.targets[0].id] = ast.literal_eval(item.value)
            except ValueError:
                attributes[item.targets[0].id] = None
        elif isinstance(item, ast.FunctionDef):
            methods[item.name] = item
    for name, want in (("name", "tensorquant"), ("version", version), ("package_type", "header-library"),
                       ("license", "BSD-3-Clause")):
        if attributes.get(name) != want:
            problem(f"{path}: {name} is {attributes.get(name)!r}, expected {want!r}")
    for method in ("export_sources", "requirements", "package_id", "generate", "package", "package_info"):
        if method not in methods:
            problem(f"{path}: no {method}() method")
    required = set()
    for call in ast.walk(methods.get("requirements", recipe)):
        if isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "requires" and call.args:
            if isinstance(call.args[0], ast.Constant):
                required.add(call.args[0].value.split("/")[0])
    wanted = {conan_names[d] for c in deps.values() for d in c if d in conan_names}
    if required != wanted:
        problem(f"{path}: requires {sorted(required)}, CMakeLists.txt finds {sorted(wanted)}")
    if "package_id" in methods and "clear" not in ast.unparse(methods["package_id"]):
        problem(f"{path}: package_id() must clear the id (header-only)")
    info = ast.unparse(methods.get("package_info", recipe))
    if "cmake_find_mode" not in info or "'none'" not in info:
        problem(f"{path}: package_info() must set cmake_find_mode to none (consumers use the project's config)")
    for component in deps:
        if f"components['{component}']" not in info:
            problem(f"{path}: package_info() lacks the component {component}")
    exported = literal_strings(methods.get("export_sources", recipe))
    for needed in ("CMakeLists.txt", "include/*", "cmake/*", "LICENSE"):
        if needed not in exported:
            problem(f"{path}: export_sources() does not export {needed}")
    return attributes


def conan_options():
    """The CMake cache variables generate() sets, as -D options (options at their defaults)."""
    tree = ast.parse((root / "conan" / "conanfile.py").read_text())
    defaults = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "default_options":
            defaults = ast.literal_eval(node.value)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript):
            target = ast.unparse(node.targets[0])
            m = re.match(r"tc\.cache_variables\['(\w+)'\]", target)
            if m:
                value = node.value
                if isinstance(value, ast.Constant):
                    out.append(f"-D{m.group(1)}={'ON' if value.value else 'OFF'}")
                else:  # an expression of self.options.x: x at its default
                    used = re.findall(r"self\.options\.(\w+)", ast.unparse(value))
                    on = bool(used) and all(defaults.get(u) for u in used)
                    out.append(f"-D{m.group(1)}={'ON' if on else 'OFF'}")
    return out


def check_vcpkg(version, deps):
    path = root / "ports" / "tensorquant" / "vcpkg.json"
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        return problem(f"{path}: not valid JSON: {e}")
    if manifest.get("name") != "tensorquant":
        problem(f"{path}: name is {manifest.get('name')!r}")
    if manifest.get("version") != version:
        problem(f"{path}: version {manifest.get('version')!r}, CMakeLists.txt has {version!r}")

    def names(items):
        return {d if isinstance(d, str) else d["name"] for d in items
                if isinstance(d, str) or not d.get("host") and d["name"] != "tensorquant"}

    core = names(manifest.get("dependencies", []))
    want_core = {vcpkg_names[d] for d in deps["core"] if d in vcpkg_names}
    if core != want_core:
        problem(f"{path}: dependencies {sorted(core)}, CMakeLists.txt's core finds {sorted(want_core)}")
    for feature in ("nn", "train", "onnx"):
        got = names(manifest.get("features", {}).get(feature, {}).get("dependencies", []))
        want = {vcpkg_names[d] for d in deps[feature] if d in vcpkg_names}
        if got != want:
            problem(f"{path}: feature {feature} depends on {sorted(got)}, CMakeLists.txt finds {sorted(want)}")
    portfile = (root / "ports" / "tensorquant" / "portfile.cmake").read_text()
    for needed in ("vcpkg_cmake_configure", "vcpkg_cmake_install", "vcpkg_cmake_config_fixup",
                   "CONFIG_PATH share/cmake/tensorquant", "vcpkg_install_copyright", "usage"):
        if needed not in portfile:
            problem(f"ports/tensorquant/portfile.cmake: lacks {needed}")
    if "${CMAKE_INSTALL_DATADIR}/cmake/tensorquant" not in (root / "CMakeLists.txt").read_text():
        problem("CMakeLists.txt no longer installs the config in share/cmake/tensorquant, where the port expects it")


def port_options():
    portfile = (root / "ports" / "tensorquant" / "portfile.cmake").read_text()
    block = portfile[portfile.index("vcpkg_cmake_configure"):]
    block = block[:block.index(")")]
    return re.findall(r"-D\w+=\w+", block)


if __name__ == "__main__":
    if sys.argv[1:] == ["--port-options"]:
        print(" ".join(port_options()))
        sys.exit(0)
    if sys.argv[1:] == ["--conan-options"]:
        print(" ".join(conan_options()))
        sys.exit(0)
    version = cmake_version()
    deps = cmake_dependencies()
    check_conan(version, deps)
    check_vcpkg(version, deps)
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print(f"packaging: Conan recipe and vcpkg port at {version}, dependencies as CMakeLists.txt finds them: "
          + ", ".join(f"{c} {deps[c]}" for c in deps))
