// broadcast_floor: the floor of the hub broadcast benchmark (tests/bench/ws/run_ws_broadcast.sh).
// A WebSocket server in plain C that puts every connection in one room and sends every data
// frame it receives, unmasked, to every other connection. It validates nothing (no UTF-8, no
// limits, no fragmentation rules, no pings) and allocates nothing per message in steady state:
// the frames of one read are built once into one buffer, which goes to every receiver with one
// send each (epoll: send(2) per receiver; io_uring: one SEND per receiver, all submitted with
// one io_uring_enter). It is what a broadcast costs a server that only moves bytes: ws_rooms is
// measured against it, per backend, in the same run.
//
//   broadcast_floor [--port N] [--backend epoll|uring]
//
// Listens on 127.0.0.1:PORT (0: any free port) and prints "listening on 127.0.0.1:PORT". A
// close frame is answered with a close frame, then the connection is closed. A receiver whose
// socket buffer is full gets the rest from its backlog (epoll: on EPOLLOUT; io_uring: after its
// send in flight), so nothing is lost or reordered. Runs until killed.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { IN_CAP = 16 * 1024 };

typedef struct buffer {
    unsigned char* data;
    size_t len, cap;
} buffer;

// One read's frames, shared by every receiver's send (io_uring: until the last one completes).
typedef struct batch {
    struct batch* next_free;
    int refs;
    size_t len;
    unsigned char data[IN_CAP];
} batch;

typedef struct conn {
    int fd;
    int upgraded;
    int member;  // index in members, or -1
    int sending; // io_uring: a send in flight
    int closing; // io_uring: closed, freed when its send completes
    batch* sent; // io_uring: the batch of the send in flight (null: `out`)
    size_t inlen;
    buffer out;     // io_uring: the backlog bytes in flight
    buffer backlog; // bytes queued behind what is in flight (or not accepted by the socket)
    unsigned char in[IN_CAP + 1];
} conn;

static conn** members;
static int nmembers, members_cap;
static batch* free_batches;

static void fail(const char* what) {
    perror(what);
    exit(1);
}

static void append(buffer* b, const unsigned char* p, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        b->data = realloc(b->data, cap);
        if (!b->data)
            fail("realloc");
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void join(conn* c) {
    if (nmembers == members_cap) {
        members_cap = members_cap ? 2 * members_cap : 1024;
        members = realloc(members, (size_t)members_cap * sizeof *members);
        if (!members)
            fail("realloc");
    }
    c->member = nmembers;
    members[nmembers++] = c;
}

static void leave(conn* c) {
    if (c->member < 0)
        return;
    conn* last = members[--nmembers];
    members[c->member] = last;
    last->member = c->member;
    c->member = -1;
}

// The 101 answer to the request in c->in, sent at once; 0 while the request is incomplete, -1
// for a request without a key.
static int handshake(conn* c) {
    c->in[c->inlen] = 0;
    char* end = strstr((char*)c->in, "\r\n\r\n");
    if (!end)
        return 0;
    char* k = strcasestr((char*)c->in, "Sec-WebSocket-Key:");
    if (!k)
        return -1;
    k += 18;
    while (*k == ' ')
        k++;
    char key[128];
    int n = 0;
    while (k[n] && k[n] != '\r' && n < 60) {
        key[n] = k[n];
        n++;
    }
    memcpy(key + n, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    unsigned char sha[20];
    SHA1((unsigned char*)key, (size_t)n + 36, sha);
    char accept_key[64];
    EVP_EncodeBlock((unsigned char*)accept_key, sha, 20);
    char answer[256];
    int len = snprintf(answer, sizeof answer,
                       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
                       "Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                       accept_key);
    if (send(c->fd, answer, (size_t)len, MSG_NOSIGNAL) != len)
        return -1;
    size_t consumed = (size_t)(end + 4 - (char*)c->in);
    memmove(c->in, c->in + consumed, c->inlen - consumed);
    c->inlen -= consumed;
    c->upgraded = 1;
    join(c);
    return 1;
}

// Moves the complete frames of c->in into `out` (unmasked, same opcode). Returns the bytes
// written, or -1 after a close frame (answered) or a frame that is not masked.
static long frames(conn* c, unsigned char* out) {
    size_t pos = 0, w = 0;
    for (;;) {
        size_t avail = c->inlen - pos;
        unsigned char* p = c->in + pos;
        if (avail < 2)
            break;
        int op = p[0] & 0x0f;
        uint64_t len = p[1] & 0x7f;
        size_t hl = 2;
        if (len == 126) {
            if (avail < 4)
                break;
            len = (uint64_t)p[2] << 8 | p[3];
            hl = 4;
        } else if (len == 127) {
            return -1; // larger than any read of this server
        }
        if (!(p[1] & 0x80))
            return -1;
        if (avail < hl + 4 + len)
            break;
        if (op == 8) {
            const unsigned char close_frame[2] = {0x88, 0};
            (void)send(c->fd, close_frame, sizeof close_frame, MSG_NOSIGNAL);
            return -1;
        }
        const unsigned char *mask = p + hl, *payload = p + hl + 4;
        if (op <= 2) {
            out[w] = (unsigned char)(0x80 | op);
            size_t oh = 2;
            if (len < 126) {
                out[w + 1] = (unsigned char)len;
            } else {
                out[w + 1] = 126;
                out[w + 2] = (unsigned char)(len >> 8);
                out[w + 3] = (unsigned char)len;
                oh = 4;
            }
            for (uint64_t i = 0; i < len; i++)
                out[w + oh + i] = payload[i] ^ mask[i & 3];
            w += oh + len;
        }
        pos += hl + 4 + len;
    }
    if (pos) {
        memmove(c->in, c->in + pos, c->inlen - pos);
        c->inlen -= pos;
    }
    return (long)w;
}

static int listener(int port, int* bound) {
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (bind(l, (struct sockaddr*)&a, sizeof a) || listen(l, 4096) ||
        getsockname(l, (struct sockaddr*)&a, &alen))
        fail("bind/listen");
    *bound = ntohs(a.sin_port);
    return l;
}

static conn* new_conn(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn* c = calloc(1, sizeof *c);
    if (!c)
        fail("calloc");
    c->fd = fd;
    c->member = -1;
    return c;
}

static void free_conn(conn* c) {
    free(c->out.data);
    free(c->backlog.data);
    free(c);
}

// ---- epoll: level-triggered; send(2) to each receiver, EPOLLOUT only for a backlog.

static int ep;

static void epoll_want_out(conn* c, int on) {
    struct epoll_event e = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

static void epoll_deliver(conn* c, const unsigned char* p, size_t n) {
    if (c->backlog.len) {
        append(&c->backlog, p, n);
        return;
    }
    ssize_t sent = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0 && errno != EAGAIN)
        return; // broken: its read side sees it and closes
    size_t done = sent < 0 ? 0 : (size_t)sent;
    if (done < n) {
        append(&c->backlog, p + done, n - done);
        epoll_want_out(c, 1);
    }
}

static void epoll_flush(conn* c) {
    ssize_t sent = send(c->fd, c->backlog.data, c->backlog.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0)
        return;
    memmove(c->backlog.data, c->backlog.data + sent, c->backlog.len - (size_t)sent);
    c->backlog.len -= (size_t)sent;
    if (!c->backlog.len)
        epoll_want_out(c, 0);
}

static void epoll_close(conn* c) {
    leave(c);
    close(c->fd);
    free_conn(c);
}

static void run_epoll(int l) {
    ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    static unsigned char out[IN_CAP];
    static struct epoll_event evs[1024];
    for (;;) {
        int n = epoll_wait(ep, evs, 1024, -1);
        for (int i = 0; i < n; i++) {
            conn* c = evs[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    conn* nc = new_conn(fd);
                    struct epoll_event e = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT)
                epoll_flush(c);
            if (!(evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                continue;
            ssize_t r = recv(c->fd, c->in + c->inlen, IN_CAP - c->inlen, 0);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN)
                    continue;
                epoll_close(c);
                continue;
            }
            c->inlen += (size_t)r;
            if (!c->upgraded) {
                if (handshake(c) < 0)
                    epoll_close(c);
                continue;
            }
            long w = frames(c, out);
            if (w < 0) {
                epoll_close(c);
                continue;
            }
            for (int m = 0; w > 0 && m < nmembers; m++)
                if (members[m] != c)
                    epoll_deliver(members[m], out, (size_t)w);
        }
    }
}

// ---- io_uring: multishot accept, one recv per connection, one SEND per receiver and read, all
// of a loop iteration submitted with one io_uring_enter.

enum { T_ACCEPT = 1, T_RECV = 2, T_SEND = 3 };
static struct io_uring ring;

static struct io_uring_sqe* sqe(void) {
    struct io_uring_sqe* s = io_uring_get_sqe(&ring);
    if (!s) {
        io_uring_submit(&ring);
        s = io_uring_get_sqe(&ring);
    }
    return s;
}

static void arm_accept(int l) {
    struct io_uring_sqe* s = sqe();
    io_uring_prep_multishot_accept(s, l, NULL, NULL, 0);
    io_uring_sqe_set_data64(s, T_ACCEPT);
}

static void arm_recv(conn* c) {
    struct io_uring_sqe* s = sqe();
    io_uring_prep_recv(s, c->fd, c->in + c->inlen, IN_CAP - c->inlen, 0);
    io_uring_sqe_set_data64(s, (uint64_t)(uintptr_t)c | T_RECV);
}

static void arm_send(conn* c, const unsigned char* p, size_t n) {
    struct io_uring_sqe* s = sqe();
    io_uring_prep_send(s, c->fd, p, n, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(s, (uint64_t)(uintptr_t)c | T_SEND);
    c->sending = 1;
}

static batch* take_batch(void) {
    batch* b = free_batches;
    if (b) {
        free_batches = b->next_free;
    } else {
        b = malloc(sizeof *b);
        if (!b)
            fail("malloc");
    }
    b->refs = 0;
    b->len = 0;
    return b;
}

static void release(batch* b) {
    if (--b->refs == 0) {
        b->next_free = free_batches;
        free_batches = b;
    }
}

static void uring_deliver(conn* c, batch* b) {
    if (c->sending) {
        append(&c->backlog, b->data, b->len);
        return;
    }
    b->refs++;
    c->sent = b;
    arm_send(c, b->data, b->len);
}

// The send in flight completed with `res`: the rest of it (short send) goes first, then the
// backlog.
static void uring_sent(conn* c, int res) {
    const unsigned char* p = c->sent ? c->sent->data : c->out.data;
    size_t len = c->sent ? c->sent->len : c->out.len;
    c->sending = 0;
    if (c->closing) {
        if (c->sent)
            release(c->sent);
        free_conn(c);
        return;
    }
    buffer next = {0};
    if (res > 0 && (size_t)res < len)
        append(&next, p + res, len - (size_t)res);
    if (c->sent) {
        release(c->sent);
        c->sent = NULL;
    }
    if (c->backlog.len)
        append(&next, c->backlog.data, c->backlog.len);
    c->backlog.len = 0;
    if (!next.len) {
        free(next.data);
        return;
    }
    free(c->out.data);
    c->out = next;
    arm_send(c, c->out.data, c->out.len);
}

static void uring_close(conn* c) {
    leave(c);
    close(c->fd);
    if (c->sending)
        c->closing = 1;
    else
        free_conn(c);
}

static void run_uring(int l) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SINGLE_ISSUER;
    if (io_uring_queue_init_params(4096, &ring, &p) < 0) {
        memset(&p, 0, sizeof p);
        int r = io_uring_queue_init_params(4096, &ring, &p);
        if (r < 0) {
            fprintf(stderr, "broadcast_floor: io_uring: %s\n", strerror(-r));
            exit(1);
        }
    }
    arm_accept(l);
    for (;;) {
        io_uring_submit_and_wait(&ring, 1);
        struct io_uring_cqe* cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            seen++;
            uint64_t ud = cqe->user_data;
            int tag = (int)(ud & 7);
            conn* c = (conn*)(uintptr_t)(ud & ~(uint64_t)7);
            if (tag == T_ACCEPT) {
                if (cqe->res >= 0)
                    arm_recv(new_conn(cqe->res));
                if (!(cqe->flags & IORING_CQE_F_MORE))
                    arm_accept(l);
            } else if (tag == T_SEND) {
                uring_sent(c, cqe->res);
            } else if (cqe->res <= 0) {
                uring_close(c);
            } else {
                c->inlen += (size_t)cqe->res;
                if (!c->upgraded) {
                    if (handshake(c) < 0)
                        uring_close(c);
                    else
                        arm_recv(c);
                    continue;
                }
                batch* b = take_batch();
                long w = frames(c, b->data);
                if (w < 0) {
                    b->refs = 1;
                    release(b);
                    uring_close(c);
                    continue;
                }
                b->len = (size_t)w;
                b->refs = 1; // held while it is handed out
                for (int m = 0; w > 0 && m < nmembers; m++)
                    if (members[m] != c)
                        uring_deliver(members[m], b);
                release(b);
                arm_recv(c);
            }
        }
        io_uring_cq_advance(&ring, seen);
    }
}

int main(int argc, char** argv) {
    int port = 0, use_uring = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--backend"))
            use_uring = !strcmp(argv[i + 1], "uring");
    }
    int bound = 0;
    int l = listener(port, &bound);
    printf("listening on 127.0.0.1:%d (broadcast_floor %s)\n", bound,
           use_uring ? "uring" : "epoll");
    fflush(stdout);
    if (use_uring)
        run_uring(l);
    else
        run_epoll(l);
    return 0;
}
