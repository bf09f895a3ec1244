# keys/ fuzz targets: every parser of untrusted key-management text (cards,
# registries, secret files). Seeds in corpus/<target>/: valid and broken files
# made with the library, plus inputs the fuzzer found worth keeping.
#
# As in proto.cmake: in a DIPX_FUZZ build the targets link their own copy of
# dipx_keys compiled with coverage (-fsanitize=fuzzer-no-link), so libFuzzer
# sees inside the parsers, and no other program in that build is instrumented.
if(DIPX_FUZZ)
  get_target_property(keys_srcs dipx_keys SOURCES)
  get_target_property(keys_dir dipx_keys SOURCE_DIR)
  list(TRANSFORM keys_srcs PREPEND ${keys_dir}/)
  add_library(dipx_keys_fuzz STATIC ${keys_srcs})
  target_include_directories(dipx_keys_fuzz PUBLIC ${keys_dir})
  target_compile_options(dipx_keys_fuzz PRIVATE -fsanitize=fuzzer-no-link)
  target_link_libraries(dipx_keys_fuzz PUBLIC dipx_proto PkgConfig::SODIUM PkgConfig::ZMQ)
  set(keys_fuzz_lib dipx_keys_fuzz)
else()
  set(keys_fuzz_lib dipx_keys)
endif()

foreach(t fuzz_card fuzz_registry fuzz_secret)
  dipx_fuzz(${t} SOURCE ${CMAKE_CURRENT_LIST_DIR}/${t}.c LIBS ${keys_fuzz_lib})
endforeach()
