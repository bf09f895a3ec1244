# Integration tests: a real dipxd on loopback, started by the tests.
add_library(dipx_harness STATIC ${CMAKE_CURRENT_LIST_DIR}/harness.c)
target_include_directories(dipx_harness PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(dipx_harness PUBLIC dipx_static dipx_keys dipx_proto dipx_testutil PkgConfig::ZMQ)

dipx_test(test_routing SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_routing.c
  LIBS dipx_harness TIMEOUT 300 LABELS integration)
add_dependencies(test_routing dipxd)

dipx_test(test_delivery SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_delivery.c
  LIBS dipx_harness TIMEOUT 300 LABELS integration)
add_dependencies(test_delivery dipxd)

# Crash harness: 3 kills here; `cmake --build . --target crash20` runs 20.
dipx_test(test_crash SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_crash.c
  LIBS dipx_harness TIMEOUT 600 LABELS integration)
add_dependencies(test_crash dipxd)
add_custom_target(crash20
  COMMAND ${CMAKE_COMMAND} -E env DIPX_CRASH_KILLS=20 DIPX_TEST_WATCHDOG_S=0 DIPX_BUILD_DIR=${PROJECT_BINARY_DIR}
          DIPX_SOURCE_DIR=${PROJECT_SOURCE_DIR} $<TARGET_FILE:test_crash>
  DEPENDS test_crash dipxd USES_TERMINAL)

dipx_test(test_transport SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_transport.c
  LIBS dipx_harness TIMEOUT 300 LABELS integration)
add_dependencies(test_transport dipxd)

dipx_test(test_faults SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_faults.c
  LIBS dipx_harness TIMEOUT 300 LABELS integration)
add_dependencies(test_faults dipxd)

# Issue #5: 10,000 held connections and a stream of junk greetings, twice,
# while agencies connect and complete round trips (needs ulimit -Hn >= 10512).
find_package(Threads REQUIRED)
dipx_test(test_flood SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_flood.c
  LIBS dipx_harness Threads::Threads TIMEOUT 300 LABELS integration)
add_dependencies(test_flood dipxd)
# A machine whose hard limit is too low skips it: shown as skipped, not passed.
set_tests_properties(test_flood PROPERTIES SKIP_REGULAR_EXPRESSION "SKIPPED:")

# SIGHUP with a registry of 25,000 agencies: served meanwhile, then in force.
# The reload is held part-way by the fault-injection shim (faultinject.cmake).
dipx_test(test_reload SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_reload.c
  LIBS dipx_harness TIMEOUT 300 LABELS integration)
add_dependencies(test_reload dipxd dipx_fi_io)
