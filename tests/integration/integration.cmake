# Integration tests: a real dipxd on loopback, started by the tests.
add_library(dipx_harness STATIC ${CMAKE_CURRENT_LIST_DIR}/harness.c)
target_include_directories(dipx_harness PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(dipx_harness PUBLIC dipx_static dipx_keys dipx_proto PkgConfig::ZMQ)

dipx_test(test_routing SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_routing.c
  LIBS dipx_harness TIMEOUT 300 LABELS integration)
add_dependencies(test_routing dipxd)

dipx_test(test_delivery SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_delivery.c
  LIBS dipx_harness TIMEOUT 300 LABELS integration)
add_dependencies(test_delivery dipxd)
