# Prepares nginx's headers exactly as Debian's /usr/sbin/nginx was configured, so that the module's
# signature (NGX_MODULE_SIGNATURE) matches and Debian's `load_module` accepts the .so.
# nginx's configure writes next to its sources, so it runs on a copy inside the build tree.
set(NGX_SRC_DIR /usr/share/nginx/src CACHE PATH "nginx sources from Debian's nginx-dev")
set(NGX_BUILD_DIR ${CMAKE_BINARY_DIR}/nginx-src)

if(NOT EXISTS ${NGX_SRC_DIR}/conf_flags)
  message(FATAL_ERROR "nginx sources not found in ${NGX_SRC_DIR}: install Debian's nginx-dev")
endif()

if(NOT EXISTS ${NGX_BUILD_DIR}/objs/ngx_auto_config.h)
  message(STATUS "hookq: configuring nginx headers in ${NGX_BUILD_DIR}")
  file(REMOVE_RECURSE ${NGX_BUILD_DIR})
  file(COPY ${NGX_SRC_DIR}/ DESTINATION ${NGX_BUILD_DIR})
  execute_process(
    COMMAND bash -c ". ./conf_flags && ./configure \"\${NGX_CONF_FLAGS[@]}\""
    WORKING_DIRECTORY ${NGX_BUILD_DIR}
    OUTPUT_FILE ${NGX_BUILD_DIR}/configure.log
    ERROR_FILE ${NGX_BUILD_DIR}/configure.log
    RESULT_VARIABLE ngx_configure_result)
  if(NOT ngx_configure_result EQUAL 0)
    message(FATAL_ERROR "nginx configure failed; see ${NGX_BUILD_DIR}/configure.log")
  endif()
endif()

set(NGX_INCLUDE_DIRS
    ${NGX_BUILD_DIR}/src/core
    ${NGX_BUILD_DIR}/src/event
    ${NGX_BUILD_DIR}/src/event/modules
    ${NGX_BUILD_DIR}/src/os/unix
    ${NGX_BUILD_DIR}/src/http
    ${NGX_BUILD_DIR}/src/http/modules
    ${NGX_BUILD_DIR}/src/http/v2
    ${NGX_BUILD_DIR}/objs)
