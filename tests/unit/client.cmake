# client/ tests: libdipx against no broker and against a fake broker (a raw
# CURVE ROUTER in the test process), linked with the static library so the
# private hooks of dipx_client_internal.h are reachable; and the check that
# the shared library exports exactly the public API.
dipx_test(test_client SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_client.c
  LIBS dipx_static dipx_keys dipx_proto PkgConfig::ZMQ LABELS client)
target_include_directories(test_client PRIVATE ${PROJECT_SOURCE_DIR}/client)
# test_failed_connect_retried and test_send_answered_then_wait_failed make
# libdipx's zmq_connect and zmq_msg_recv fail.
target_link_options(test_client PRIVATE -Wl,--wrap=zmq_connect,--wrap=zmq_msg_recv)

add_test(NAME client_exports
  COMMAND ${CMAKE_COMMAND} -DLIB=$<TARGET_FILE:dipx>
          -DEXPECTED=${PROJECT_BINARY_DIR}/client/dipx.exports
          -P ${PROJECT_SOURCE_DIR}/cmake/DipxCheckExports.cmake)
set_tests_properties(client_exports PROPERTIES LABELS client)
