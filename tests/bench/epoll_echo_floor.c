#define _GNU_SOURCE /* accept4 */
/* epoll_echo_floor: the hand-written floor core_pingpong's server is compared against.
 *
 *   epoll_echo_floor [--host 127.0.0.1] [--port 0]
 *
 * A single-threaded, level-triggered epoll echo server speaking core_pingpong's protocol: each
 * connection reads exactly 64 bytes and writes them back. Per round trip it costs one recv and
 * one send plus a share of one epoll_wait: the fewest syscalls a readiness server can make.
 * Same CLI and reports as `core_pingpong server`: prints "listening on 127.0.0.1:PORT"
 * (flushed); SIGUSR1 starts the measurement window, SIGUSR2 ends it and prints
 *   "window rt=R cpu_us=C allocs=0 frees=0 wall_us=W"
 * and SIGINT/SIGTERM print "exit ..." (totals since start) and exit 0. Signals arrive through a
 * signalfd in the same epoll set. Raises RLIMIT_NOFILE to its hard limit.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MSG_SIZE 64
#define MAX_EVENTS 256
#define TAG_LISTENER UINT64_MAX
#define TAG_SIGNALS (UINT64_MAX - 1)

struct conn {
    int fd;
    size_t have; /* request bytes received */
    size_t sent; /* response bytes sent (only nonzero while a send is parked on EPOLLOUT) */
    int writing; /* waiting for EPOLLOUT */
    unsigned char buf[MSG_SIZE];
};

struct snapshot {
    uint64_t rt, cpu, wall;
};

static uint64_t round_trips;

static uint64_t cpu_us(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
           (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
}

static uint64_t wall_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static struct snapshot take(void) {
    struct snapshot s = {round_trips, cpu_us(), wall_us()};
    return s;
}

static void print_delta(const char* tag, struct snapshot from, struct snapshot to) {
    printf("%s rt=%llu cpu_us=%llu allocs=0 frees=0 wall_us=%llu\n", tag,
           (unsigned long long)(to.rt - from.rt), (unsigned long long)(to.cpu - from.cpu),
           (unsigned long long)(to.wall - from.wall));
    fflush(stdout);
}

static void usage(FILE* out) {
    fputs("usage: epoll_echo_floor [--host ADDR] [--port N]\n", out);
}

static void close_conn(int ep, struct conn* c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

static void set_interest(int ep, struct conn* c, uint32_t events) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.ptr = c;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Sends what is left of the response; returns -1 on error, 0 when parked, 1 when done. */
static int send_rest(int ep, struct conn* c) {
    while (c->sent < MSG_SIZE) {
        ssize_t w = send(c->fd, c->buf + c->sent, MSG_SIZE - c->sent, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                return -1;
            if (!c->writing) {
                c->writing = 1;
                set_interest(ep, c, EPOLLOUT);
            }
            return 0;
        }
        c->sent += (size_t)w;
    }
    c->sent = 0;
    c->have = 0;
    ++round_trips;
    if (c->writing) {
        c->writing = 0;
        set_interest(ep, c, EPOLLIN);
    }
    return 1;
}

static void on_conn(int ep, struct conn* c, uint32_t events) {
    if (c->writing) {
        if (send_rest(ep, c) < 0)
            close_conn(ep, c);
        return;
    }
    if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        return;
    ssize_t r = recv(c->fd, c->buf + c->have, MSG_SIZE - c->have, 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        close_conn(ep, c);
        return;
    }
    c->have += (size_t)r;
    if (c->have < MSG_SIZE)
        return;
    if (send_rest(ep, c) < 0)
        close_conn(ep, c);
}

int main(int argc, char** argv) {
    const char* host = "127.0.0.1";
    unsigned long port = 0;
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            usage(stderr);
            return 2;
        }
        if (strcmp(argv[i], "--host") == 0) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0) {
            char* end = NULL;
            port = strtoul(argv[++i], &end, 10);
            if (*end != '\0' || port > 65535) {
                usage(stderr);
                return 2;
            }
        } else {
            usage(stderr);
            return 2;
        }
    }

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGUSR2);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) {
        perror("signalfd");
        return 1;
    }

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "epoll_echo_floor: invalid --host %s\n", host);
        return 2;
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, (struct sockaddr*)&sa, sizeof sa) != 0 || listen(lfd, 1024) != 0) {
        perror("epoll_echo_floor: listen");
        return 1;
    }
    socklen_t salen = sizeof sa;
    getsockname(lfd, (struct sockaddr*)&sa, &salen);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.u64 = TAG_LISTENER;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.u64 = TAG_SIGNALS;
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);

    char addr[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sa.sin_addr, addr, sizeof addr);
    printf("listening on %s:%u backend=floor\n", addr, (unsigned)ntohs(sa.sin_port));
    fflush(stdout);

    struct snapshot start = take();
    struct snapshot window_start = start;
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; ++i) {
            uint64_t tag = events[i].data.u64;
            if (tag == TAG_LISTENER) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break; /* EAGAIN; EMFILE etc. retried on the next event */
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn* c = calloc(1, sizeof *c);
                    if (c == NULL) {
                        close(fd);
                        continue;
                    }
                    c->fd = fd;
                    struct epoll_event cev;
                    memset(&cev, 0, sizeof cev);
                    cev.events = EPOLLIN;
                    cev.data.ptr = c;
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) != 0) {
                        close(fd);
                        free(c);
                    }
                }
            } else if (tag == TAG_SIGNALS) {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                    if (si.ssi_signo == SIGUSR1) {
                        window_start = take();
                    } else if (si.ssi_signo == SIGUSR2) {
                        print_delta("window", window_start, take());
                    } else {
                        print_delta("exit", start, take());
                        return 0; /* the kernel closes the connections */
                    }
                }
            } else {
                on_conn(ep, (struct conn*)events[i].data.ptr, events[i].events);
            }
        }
    }
}
