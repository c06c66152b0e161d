#define _GNU_SOURCE /* accept4 */
/* epoll_tls_floor: the hand-written TLS floor core_pingpong's TLS server is compared against.
 *
 *   epoll_tls_floor --tls-cert FILE --tls-key FILE [--host 127.0.0.1] [--port 0]
 *
 * A single-threaded, level-triggered epoll echo server over OpenSSL with the SSL object
 * reading and writing the non-blocking socket itself (SSL_set_fd, read-ahead on): per round
 * trip one recv (the whole 64-byte record) + one send plus a share of one epoll_wait, as
 * epoll_echo_floor. Each connection handshakes (no timeout), then reads exactly 64 bytes and
 * writes them back; close_notify, a reset or any error closes it. The SSL_CTX is configured
 * like coronet's tls_context::server (TLS 1.2 minimum, no renegotiation, no compression,
 * server cipher preference, SSL_MODE_RELEASE_BUFFERS, session tickets on), so the difference
 * to coronet is the I/O layer (memory BIOs + coroutines vs SSL on the fd).
 *
 * Same reports as `core_pingpong server`: prints "listening on 127.0.0.1:PORT backend=floor tls"
 * (flushed); SIGUSR1 starts the measurement window, SIGUSR2 ends it and prints
 *   "window rt=R cpu_us=C allocs=0 frees=0 wall_us=W hs=H resumed=U ossl_allocs=O"
 * (O: OpenSSL's CRYPTO_malloc/realloc calls, counted through CRYPTO_set_mem_functions) and
 * SIGINT/SIGTERM print "exit ..." (totals since start) and exit 0. Raises RLIMIT_NOFILE.
 */
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <errno.h>
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
    SSL* ssl;
    int handshaking;
    int want_out; /* the last SSL call wanted to write: waiting for EPOLLOUT */
    size_t have;  /* request bytes received */
    unsigned char buf[MSG_SIZE];
};

struct snapshot {
    uint64_t rt, cpu, wall, hs, resumed, ossl;
};

static uint64_t round_trips, handshakes, resumed, ossl_allocs;

static void* count_malloc(size_t n, const char* file, int line) {
    (void)file;
    (void)line;
    ++ossl_allocs;
    return malloc(n);
}
static void* count_realloc(void* p, size_t n, const char* file, int line) {
    (void)file;
    (void)line;
    ++ossl_allocs;
    return realloc(p, n);
}
static void count_free(void* p, const char* file, int line) {
    (void)file;
    (void)line;
    free(p);
}

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
    struct snapshot s = {round_trips, cpu_us(), wall_us(), handshakes, resumed, ossl_allocs};
    return s;
}

static void print_delta(const char* tag, struct snapshot from, struct snapshot to) {
    printf("%s rt=%llu cpu_us=%llu allocs=0 frees=0 wall_us=%llu hs=%llu resumed=%llu "
           "ossl_allocs=%llu\n",
           tag, (unsigned long long)(to.rt - from.rt), (unsigned long long)(to.cpu - from.cpu),
           (unsigned long long)(to.wall - from.wall), (unsigned long long)(to.hs - from.hs),
           (unsigned long long)(to.resumed - from.resumed),
           (unsigned long long)(to.ossl - from.ossl));
    fflush(stdout);
}

static void usage(FILE* out) {
    fputs("usage: epoll_tls_floor --tls-cert FILE --tls-key FILE [--host ADDR] [--port N]\n", out);
}

static void close_conn(int ep, struct conn* c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    SSL_free(c->ssl);
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

/* Handles an SSL call's failure: 0 to wait for the next event, -1 to close. */
static int on_ssl_fail(int ep, struct conn* c, int r) {
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        if (c->want_out) {
            c->want_out = 0;
            set_interest(ep, c, EPOLLIN);
        }
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        if (!c->want_out) {
            c->want_out = 1;
            set_interest(ep, c, EPOLLOUT);
        }
        return 0;
    }
    ERR_clear_error();
    return -1;
}

static void on_conn(int ep, struct conn* c) {
    if (c->handshaking) {
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            if (on_ssl_fail(ep, c, r) < 0)
                close_conn(ep, c);
            return;
        }
        c->handshaking = 0;
        ++handshakes;
        if (SSL_session_reused(c->ssl))
            ++resumed;
    }
    if (c->want_out) { /* a response write is pending (never seen with 64-byte messages) */
        size_t n = 0;
        int r = SSL_write_ex(c->ssl, c->buf, MSG_SIZE, &n);
        if (r != 1) {
            if (on_ssl_fail(ep, c, r) < 0)
                close_conn(ep, c);
            return;
        }
        c->want_out = 0;
        set_interest(ep, c, EPOLLIN);
        c->have = 0;
        ++round_trips;
    }
    for (;;) {
        size_t n = 0;
        int r = SSL_read_ex(c->ssl, c->buf + c->have, MSG_SIZE - c->have, &n);
        if (r != 1) {
            if (on_ssl_fail(ep, c, r) < 0)
                close_conn(ep, c);
            return;
        }
        c->have += n;
        if (c->have < MSG_SIZE)
            continue;
        r = SSL_write_ex(c->ssl, c->buf, MSG_SIZE, &n);
        if (r != 1) {
            if (on_ssl_fail(ep, c, r) < 0)
                close_conn(ep, c);
            return;
        }
        c->have = 0;
        ++round_trips;
        /* Lockstep: nothing more until the client saw the echo; the next epoll_wait decides. */
        if (!SSL_has_pending(c->ssl))
            return;
    }
}

int main(int argc, char** argv) {
    /* Before anything touches OpenSSL. */
    if (CRYPTO_set_mem_functions(count_malloc, count_realloc, count_free) != 1)
        fputs("epoll_tls_floor: OpenSSL allocations are not counted\n", stderr);
    const char* host = "127.0.0.1";
    const char* cert = NULL;
    const char* key = NULL;
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
        } else if (strcmp(argv[i], "--tls-cert") == 0) {
            cert = argv[++i];
        } else if (strcmp(argv[i], "--tls-key") == 0) {
            key = argv[++i];
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
    if (cert == NULL || key == NULL) {
        usage(stderr);
        return 2;
    }

    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        fputs("epoll_tls_floor: certificate/key: ", stderr);
        ERR_print_errors_fp(stderr);
        return 2;
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
    sigaddset(&mask, SIGPIPE);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    sigdelset(&mask, SIGPIPE); /* blocked (OpenSSL writes with send/write), never read */
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
        fprintf(stderr, "epoll_tls_floor: invalid --host %s\n", host);
        return 2;
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, (struct sockaddr*)&sa, sizeof sa) != 0 || listen(lfd, 1024) != 0) {
        perror("epoll_tls_floor: listen");
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
    printf("listening on %s:%u backend=floor tls\n", addr, (unsigned)ntohs(sa.sin_port));
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
                    SSL* ssl = c != NULL ? SSL_new(ctx) : NULL;
                    if (ssl == NULL) {
                        free(c);
                        close(fd);
                        continue;
                    }
                    SSL_set_fd(ssl, fd);
                    SSL_set_accept_state(ssl);
                    c->fd = fd;
                    c->ssl = ssl;
                    c->handshaking = 1;
                    struct epoll_event cev;
                    memset(&cev, 0, sizeof cev);
                    cev.events = EPOLLIN;
                    cev.data.ptr = c;
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) != 0) {
                        SSL_free(ssl);
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
                on_conn(ep, (struct conn*)events[i].data.ptr);
            }
        }
    }
}
