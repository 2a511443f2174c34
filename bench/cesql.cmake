# The CESQL benchmark: evaluations per second of a typical filter against a prepared event.
# Included from the top-level CMakeLists.txt, after src/, when benchmarks are built; run
#   <build>/cesql_bench [evaluations per round] [rounds]
add_executable(cesql_bench ${CMAKE_CURRENT_LIST_DIR}/cesql_bench.c)
target_include_directories(cesql_bench PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(cesql_bench PRIVATE weir_cesql)
