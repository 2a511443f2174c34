# The filter benchmark: what an attribute-only filter adds to each event (see script_bench.c).
# Included from the top-level CMakeLists.txt, after src/, when benchmarks are built; run
#   <build>/script_bench [events per round] [rounds]
add_executable(script_bench ${CMAKE_CURRENT_LIST_DIR}/script_bench.c)
target_include_directories(script_bench PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(script_bench PRIVATE weir_script)
