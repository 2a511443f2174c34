# Fuzz target of the route module: parses listener specs and matches what it accepts.
weir_fuzz_target(route_listener ${CMAKE_CURRENT_SOURCE_DIR}/route_listener.c weir_route)
