# tensorquant_enable_dispatch(<target>): adds to <target> the AVX2 and AVX-512 kernels of
# every built-in quantizer, each in a translation unit compiled for its instruction set,
# so that tensorquant::dispatched_quantizer runs the widest kernels the CPU has even when
# <target> itself is built for a baseline (see tensorquant/dispatch.hpp). x86-64 only;
# elsewhere dispatched_quantizer uses the target's own kernels.
set(_TENSORQUANT_DISPATCH_TEMPLATE "${CMAKE_CURRENT_LIST_DIR}/tensorquant_dispatch.cpp.in")

function(tensorquant_enable_dispatch target)
  if(NOT CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
    return()
  endif()
  set(dir "${CMAKE_CURRENT_BINARY_DIR}/${target}_tensorquant_dispatch")
  foreach(isa avx2 avx512)
    set(TQ_DISPATCH_NAME ${isa})
    set(TQ_DISPATCH_ENTRY tensorquant_dispatch_${isa})
    configure_file("${_TENSORQUANT_DISPATCH_TEMPLATE}" "${dir}/dispatch_${isa}.cpp" @ONLY)
    target_sources(${target} PRIVATE "${dir}/dispatch_${isa}.cpp")
  endforeach()
  set_source_files_properties("${dir}/dispatch_avx2.cpp" TARGET_DIRECTORY ${target} PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma")
  set_source_files_properties("${dir}/dispatch_avx512.cpp" TARGET_DIRECTORY ${target} PROPERTIES
                              COMPILE_OPTIONS "-mavx2;-mfma;-mavx512f;-mavx512cd;-mavx512dq;-mavx512bw")
  target_compile_definitions(${target} PRIVATE TENSORQUANT_DISPATCH_X86=1)
endfunction()
