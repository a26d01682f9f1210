/* LD_PRELOAD shim for load generators (wrk) that cannot choose their source address:
 * every IPv4 TCP connect() is bound to $CONFORMANCE_SOURCE first (any 127.0.0.0/8 address),
 * so the backend sees the suite's trusted peer. Built by the harness with `cc -shared`. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    static int (*real_connect)(int, const struct sockaddr *, socklen_t);
    if (!real_connect) real_connect = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    const char *source = getenv("CONFORMANCE_SOURCE");
    if (source && addr && addr->sa_family == AF_INET) {
        struct sockaddr_in local;
        memset(&local, 0, sizeof local);
        local.sin_family = AF_INET;
        if (inet_pton(AF_INET, source, &local.sin_addr) == 1) bind(fd, (struct sockaddr *)&local, sizeof local);
    }
    return real_connect(fd, addr, len);
}
