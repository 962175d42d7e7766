# Debian package (CPack DEB): `cmake --build <build> --target package` or `cd <build> && cpack -G DEB`.
# Included at the end of the top-level CMakeLists.txt, so every target is already defined.
# Layout follows Debian's own nginx module packages (libnginx-mod-*): the .so in
# /usr/lib/nginx/modules, a one-line load_module file in /usr/share/nginx/modules-available, and a
# 50-mod-http-hookq.conf symlink in /etc/nginx/modules-enabled made by postinst.

set(HOOKQ_PKG_DIR ${CMAKE_CURRENT_LIST_DIR})

# Paths under /usr are relative to CPACK_PACKAGING_INSTALL_PREFIX (/usr); /etc and /lib are absolute.
install(TARGETS ngx_http_hookq_module LIBRARY DESTINATION lib/nginx/modules)
install(FILES ${HOOKQ_PKG_DIR}/mod-http-hookq.conf DESTINATION share/nginx/modules-available)

if(TARGET hookq-worker)
  install(TARGETS hookq-worker RUNTIME DESTINATION bin)
endif()
if(TARGET hookqctl)
  install(TARGETS hookqctl RUNTIME DESTINATION bin)
endif()
if(TARGET hookq-worker OR TARGET hookqctl)
  if(EXISTS ${CMAKE_SOURCE_DIR}/conf/hookq-worker.service)
    install(FILES ${CMAKE_SOURCE_DIR}/conf/hookq-worker.service DESTINATION /lib/systemd/system)
  endif()
  if(EXISTS ${CMAKE_SOURCE_DIR}/conf/worker.toml)
    # May hold a PostgreSQL DSN with a password: not world-readable (postinst gives it group hookq).
    install(FILES ${CMAKE_SOURCE_DIR}/conf/worker.toml DESTINATION /etc/hookq
            PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
    set(HOOKQ_CONFFILES "/etc/hookq/worker.toml\n")
  endif()
  install(DIRECTORY ${CMAKE_SOURCE_DIR}/migrations/ DESTINATION share/hookq/migrations
          FILES_MATCHING PATTERN "*.sql")
endif()
install(DIRECTORY ${CMAKE_SOURCE_DIR}/conf/nginx/ DESTINATION share/doc/hookq/examples/nginx
        FILES_MATCHING PATTERN "*.conf" PATTERN "README.md")
# Prometheus rules (with their promtool tests, for whoever edits them), the Grafana dashboard, and
# the runbooks the rules' runbook_url point at.
install(DIRECTORY ${CMAKE_SOURCE_DIR}/conf/prometheus/ DESTINATION share/doc/hookq/examples/prometheus
        FILES_MATCHING PATTERN "*.yml")
install(DIRECTORY ${CMAKE_SOURCE_DIR}/conf/grafana/ DESTINATION share/doc/hookq/examples/grafana
        FILES_MATCHING PATTERN "*.json")
install(FILES ${CMAKE_SOURCE_DIR}/docs/runbooks.md DESTINATION share/doc/hookq)

# The module's binary signature ties it to the nginx ABI it was compiled against. Depend on that
# ABI as Debian's own libnginx-mod-* packages do (the nginx-abi-* virtual package that nginx
# provides), so nginx-core, nginx-full, nginx-light and nginx-extras all satisfy it.
execute_process(COMMAND dpkg-query -W -f=\${Provides} nginx
                OUTPUT_VARIABLE HOOKQ_NGINX_PROVIDES ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
string(REGEX MATCH "nginx-abi-[^, ]+" HOOKQ_NGINX_ABI "${HOOKQ_NGINX_PROVIDES}")
if(HOOKQ_NGINX_ABI)
  set(HOOKQ_NGINX_DEP "${HOOKQ_NGINX_ABI}")
else()
  message(WARNING "hookq packaging: no nginx-abi-* found; the package will depend on any nginx")
  set(HOOKQ_NGINX_DEP "nginx")
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME hookq)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "hookq maintainers <hookq@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "self-hosted inbound webhook gateway (nginx module, worker, hookqctl)")
set(CPACK_PACKAGE_DESCRIPTION
    "The hookq nginx module verifies webhook signatures (GitHub, Stripe, Standard Webhooks, Svix,
Shopify, Slack, Twilio, MoySklad, generic HMAC) and queues them in Redis; hookq-worker delivers
them to your application with retries and records them in PostgreSQL; hookqctl administers.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_STRIP_FILES ON)  # as Debian ships binaries; debug with the build tree's unstripped copies
set(CPACK_DEBIAN_PACKAGE_SECTION httpd)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/hookq/hookq")
# hiredis is linked statically into the module (no dependency for it; the worker links Debian's
# libhiredis0.14). The rest (libssl3, libpq5, libcurl4, libsystemd0, libstdc++6, ...) comes from
# dpkg-shlibdeps when it is there.
find_program(HOOKQ_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(HOOKQ_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "${HOOKQ_NGINX_DEP}, adduser")
else()
  set(HOOKQ_LIB_DEPS "libc6, libstdc++6, libssl3")
  if(TARGET hookq-worker OR TARGET hookqctl)
    string(APPEND HOOKQ_LIB_DEPS ", libpq5, libcurl4, libsystemd0, libhiredis0.14, libspdlog1.10-fmt9, libfmt9, libtomlplusplus3, libmicrohttpd12")
  endif()
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "${HOOKQ_NGINX_DEP}, adduser, ${HOOKQ_LIB_DEPS}")
endif()
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "redis-server")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "postgresql")

# Maintainer scripts; conffiles lists /etc/hookq/worker.toml when it is packaged.
file(WRITE ${CMAKE_BINARY_DIR}/packaging/conffiles "${HOOKQ_CONFFILES}")
set(HOOKQ_CONTROL_EXTRA ${HOOKQ_PKG_DIR}/debian/postinst ${HOOKQ_PKG_DIR}/debian/prerm
                        ${HOOKQ_PKG_DIR}/debian/postrm)
if(HOOKQ_CONFFILES)
  list(APPEND HOOKQ_CONTROL_EXTRA ${CMAKE_BINARY_DIR}/packaging/conffiles)
endif()
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${HOOKQ_CONTROL_EXTRA})
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
