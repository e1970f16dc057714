# CMake package of the installed waypost C library:
#   find_package(waypost REQUIRED)
#   target_link_libraries(app PRIVATE waypost::waypost)         # shared
#   target_link_libraries(app PRIVATE waypost::waypost_static)  # static
# Both carry the include directory (waypost.h, waypost.hpp).
include(CMakeFindDependencyMacro)
find_dependency(Threads)

get_filename_component(_waypost_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)

if(NOT TARGET waypost::waypost)
  add_library(waypost::waypost SHARED IMPORTED)
  set_target_properties(waypost::waypost PROPERTIES
    IMPORTED_LOCATION "${_waypost_prefix}/lib/libwaypost.so.0"
    IMPORTED_SONAME "libwaypost.so.0"
    INTERFACE_INCLUDE_DIRECTORIES "${_waypost_prefix}/include")

  add_library(waypost::waypost_static STATIC IMPORTED)
  set_target_properties(waypost::waypost_static PROPERTIES
    IMPORTED_LOCATION "${_waypost_prefix}/lib/libwaypost.a"
    INTERFACE_INCLUDE_DIRECTORIES "${_waypost_prefix}/include"
    INTERFACE_LINK_LIBRARIES "Threads::Threads;${CMAKE_DL_LIBS};m")
endif()

unset(_waypost_prefix)
set(waypost_FOUND TRUE)
