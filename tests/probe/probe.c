/*
 * probe: what a hostile process inside a container tries, one attempt per sub-command. Built
 * statically by the end-to-end tests (tests/src/confinement.rs) and put into a test image.
 *
 * Each attempt prints one line and exits:
 *   0  "<what>: refused <ERRNO> (<text>)"  the kernel refused with EPERM, EACCES or ENOSYS
 *   1  "<what>: ALLOWED ..."               the call got past the permission checks
 *   2  "<what>: failed <ERRNO> ..."        another error: the attempt said nothing either way
 * `ping ADDR` and `udp-echo PORT` are the exceptions: ordinary workloads for the network tests
 * (`ping` exits 0 when the echo came back; `udp-echo` answers datagrams until it is killed), and
 * so are `frame` and `arp-reply`, which a container with raw sockets uses to forge what it sends:
 *   frame IF DST-MAC SRC-MAC SRC-IP DST-IP PORT TEXT  one Ethernet/IPv4/UDP frame carrying TEXT
 *   arp-reply IF SRC-MAC SENDER-IP                    a broadcast ARP reply: SENDER-IP is SRC-MAC
 *   router-advert IF PREFIX                           an IPv6 router advertisement to all nodes:
 *                                                     a default router, and PREFIX/64 to take
 * where SRC-MAC `self` is IF's own address; both exit 0 once the frame is sent.
 *
 * Every attempt is harmless when allowed: a bogus module image, reboot(2) with a command a
 * container's PID namespace rejects, a clock that cannot be set, and so on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#ifdef __linux__
#include <sys/sysmacros.h>
#endif
#include <time.h>
#include <unistd.h>

#ifdef __linux__
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sched.h>
#include <sys/ptrace.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#endif

static const char *errno_name(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case ENOENT: return "ENOENT";
    case EFAULT: return "EFAULT";
    case ENOEXEC: return "ENOEXEC";
    case EBADF: return "EBADF";
    case EROFS: return "EROFS";
    case ESRCH: return "ESRCH";
    default: return "E?";
    }
}

/* Reports the outcome of a call that answered `result` with `err` as errno. */
static int report(const char *what, long result, int err) {
    if (result >= 0) {
        printf("%s: ALLOWED (result %ld)\n", what, result);
        return 1;
    }
    if (err == EPERM || err == EACCES || err == ENOSYS) {
        printf("%s: refused %s (%s)\n", what, errno_name(err), strerror(err));
        return 0;
    }
    printf("%s: ALLOWED past the permission check, then failed %s (%s)\n", what,
           errno_name(err), strerror(err));
    return 1;
}

#define TRY(what, call)                                                                            \
    do {                                                                                           \
        errno = 0;                                                                                 \
        long result_ = (long)(call);                                                               \
        return report(what, result_, errno);                                                       \
    } while (0)

static int raw_socket(void) {
    TRY("raw socket", socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
}

static int device_node(void) {
    /* A block device node (the first disk's major on most hosts). */
    TRY("mknod of a block device", mknod("/tmp/probe-disk", S_IFBLK | 0600, makedev(8, 0)));
}

#ifdef __linux__
static int keyring(void) {
    TRY("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
}

static int load_module(void) {
    static const char image[16] = "not a module";
    TRY("init_module", syscall(SYS_init_module, image, sizeof image, ""));
}

static int reboot_host(void) {
    /* Ctrl-Alt-Del handling: a PID namespace other than the host's answers EINVAL when allowed. */
    TRY("reboot", syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
                          LINUX_REBOOT_CMD_CAD_OFF, NULL));
}

static int file_handle(void) {
    struct {
        struct file_handle handle;
        unsigned char bytes[8];
    } h;
    memset(&h, 0, sizeof h);
    h.handle.handle_bytes = 8;
    h.handle.handle_type = 1;
    int mount_fd = open("/", O_RDONLY | O_DIRECTORY);
    TRY("open_by_handle_at", open_by_handle_at(mount_fd, &h.handle, O_RDONLY));
}

static int bpf_map(void) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    TRY("bpf", syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
}

static int perf_event(void) {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.type = PERF_TYPE_SOFTWARE;
    attr.size = sizeof attr;
    attr.config = PERF_COUNT_SW_CPU_CLOCK;
    TRY("perf_event_open", syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0));
}

static int set_clock(void) {
    /* CLOCK_MONOTONIC cannot be set: EINVAL when the call is allowed at all. */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    TRY("clock_settime", clock_settime(CLOCK_MONOTONIC, &now));
}

static int swap(void) {
    TRY("swapon", swapon("/nonexistent-swap", 0));
}

static int join_namespace(void) {
    int fd = open("/proc/self/ns/net", O_RDONLY);
    TRY("setns", setns(fd, CLONE_NEWNET));
}

static int new_namespace(const char *kind) {
    int flag = strcmp(kind, "user") == 0     ? CLONE_NEWUSER
               : strcmp(kind, "mount") == 0  ? CLONE_NEWNS
               : strcmp(kind, "net") == 0    ? CLONE_NEWNET
               : strcmp(kind, "pid") == 0    ? CLONE_NEWPID
               : strcmp(kind, "cgroup") == 0 ? CLONE_NEWCGROUP
                                             : 0;
    if (flag == 0) {
        fprintf(stderr, "unknown namespace %s\n", kind);
        return 2;
    }
    TRY("unshare", unshare(flag));
}

static int clone3_call(void) {
    /* The filter answers ENOSYS, so C libraries fall back to clone(2). */
    errno = 0;
    long result = syscall(SYS_clone3, NULL, 0);
    if (result < 0 && errno == ENOSYS) {
        printf("clone3: ENOSYS\n");
        return 0;
    }
    printf("clone3: %s\n", errno_name(errno));
    return 1;
}

static int trace_init(void) {
    TRY("ptrace of PID 1", ptrace(PTRACE_ATTACH, 1, NULL, NULL));
}

static int ping(const char *address) {
    int fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    if (fd < 0) {
        printf("ping: cannot open an ICMP datagram socket: %s\n", strerror(errno));
        return 1;
    }
    struct sockaddr_in to = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, address, &to.sin_addr) != 1) {
        printf("ping: bad address %s\n", address);
        return 2;
    }
    struct icmphdr echo = {.type = ICMP_ECHO};
    echo.un.echo.sequence = htons(1);
    if (sendto(fd, &echo, sizeof echo, 0, (struct sockaddr *)&to, sizeof to) < 0) {
        printf("ping: send: %s\n", strerror(errno));
        return 1;
    }
    struct pollfd ready = {.fd = fd, .events = POLLIN};
    if (poll(&ready, 1, 2000) != 1) {
        printf("ping: no reply from %s\n", address);
        return 1;
    }
    struct icmphdr reply;
    if (recv(fd, &reply, sizeof reply, 0) < (ssize_t)sizeof reply || reply.type != ICMP_ECHOREPLY) {
        printf("ping: not an echo reply\n");
        return 1;
    }
    printf("ping: reply from %s\n", address);
    return 0;
}

/* Parses `aa:bb:cc:dd:ee:ff`, or `self` as the address of the interface `ifname`. */
static int parse_mac(const char *text, const char *ifname, unsigned char mac[6]) {
    if (strcmp(text, "self") == 0) {
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        struct ifreq req;
        memset(&req, 0, sizeof req);
        snprintf(req.ifr_name, sizeof req.ifr_name, "%s", ifname);
        if (fd < 0 || ioctl(fd, SIOCGIFHWADDR, &req) < 0) return -1;
        memcpy(mac, req.ifr_hwaddr.sa_data, 6);
        close(fd);
        return 0;
    }
    unsigned int b[6];
    if (sscanf(text, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6) return -1;
    for (int i = 0; i < 6; i++) mac[i] = (unsigned char)b[i];
    return 0;
}

/* The one's-complement sum of RFC 1071 over `length` bytes. */
static unsigned short checksum(const unsigned char *data, size_t length) {
    unsigned long sum = 0;
    for (size_t i = 0; i + 1 < length; i += 2) sum += (unsigned long)(data[i] << 8 | data[i + 1]);
    if (length % 2) sum += (unsigned long)(data[length - 1] << 8);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (unsigned short)~sum;
}

/* Sends `length` bytes as one frame on `ifname` through a packet socket. */
static int send_frame(const char *what, const char *ifname, const unsigned char *frame, size_t length) {
    int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    if (fd < 0) {
        printf("%s: cannot open a packet socket: %s\n", what, strerror(errno));
        return 1;
    }
    struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_ifindex = (int)if_nametoindex(ifname),
                             .sll_halen = 6};
    memcpy(to.sll_addr, frame, 6);
    if (sendto(fd, frame, length, 0, (struct sockaddr *)&to, sizeof to) != (ssize_t)length) {
        printf("%s: send on %s: %s\n", what, ifname, strerror(errno));
        return 1;
    }
    printf("%s: sent %zu bytes on %s\n", what, length, ifname);
    return 0;
}

static int udp_frame(char **argv) {
    const char *ifname = argv[2];
    unsigned char frame[1500];
    memset(frame, 0, sizeof frame);
    struct in_addr source, destination;
    if (parse_mac(argv[3], ifname, frame) < 0 || parse_mac(argv[4], ifname, frame + 6) < 0) {
        printf("frame: bad MAC address %s or %s on %s: %s\n", argv[3], argv[4], ifname, strerror(errno));
        return 2;
    }
    if (inet_pton(AF_INET, argv[5], &source) != 1 || inet_pton(AF_INET, argv[6], &destination) != 1) {
        printf("frame: bad address %s or %s\n", argv[5], argv[6]);
        return 2;
    }
    size_t text = strlen(argv[8]);
    if (text > 1000) text = 1000;
    frame[12] = 0x08; /* IPv4 */
    unsigned char *ip = frame + 14, *udp = ip + 20;
    size_t total = 20 + 8 + text;
    ip[0] = 0x45;
    ip[2] = (unsigned char)(total >> 8);
    ip[3] = (unsigned char)total;
    ip[8] = 64;
    ip[9] = IPPROTO_UDP;
    memcpy(ip + 12, &source, 4);
    memcpy(ip + 16, &destination, 4);
    unsigned short sum = checksum(ip, 20);
    ip[10] = (unsigned char)(sum >> 8);
    ip[11] = (unsigned char)sum;
    unsigned short port = (unsigned short)atoi(argv[7]);
    udp[0] = 0x9c; /* source port 40000 */
    udp[1] = 0x40;
    udp[2] = (unsigned char)(port >> 8);
    udp[3] = (unsigned char)port;
    udp[4] = (unsigned char)((8 + text) >> 8);
    udp[5] = (unsigned char)(8 + text);
    memcpy(udp + 8, argv[8], text); /* UDP checksum 0: none, as IPv4 allows */
    return send_frame("frame", ifname, frame, 14 + total);
}

static int arp_reply(char **argv) {
    const char *ifname = argv[2];
    unsigned char frame[42];
    memset(frame, 0xff, 6);
    struct in_addr sender;
    if (parse_mac(argv[3], ifname, frame + 6) < 0 || inet_pton(AF_INET, argv[4], &sender) != 1) {
        printf("arp-reply: bad MAC address %s or address %s: %s\n", argv[3], argv[4], strerror(errno));
        return 2;
    }
    unsigned char *arp = frame + 14;
    static const unsigned char header[] = {0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02};
    memcpy(frame + 12, header, sizeof header);
    memcpy(arp + 8, frame + 6, 6);
    memcpy(arp + 14, &sender, 4);
    memset(arp + 18, 0xff, 6);
    memcpy(arp + 24, &sender, 4);
    return send_frame("arp-reply", ifname, frame, sizeof frame);
}

/* An IPv6 router advertisement on `ifname` to all nodes: this host as a default router for 30
 * minutes and `prefix`/64 for stateless address configuration. Sent again while the interface's
 * link-local address is still tentative (EADDRNOTAVAIL). */
static int router_advert(const char *ifname, const char *prefix) {
    int fd = socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
    if (fd < 0) {
        printf("router-advert: cannot open a raw ICMPv6 socket: %s\n", strerror(errno));
        return 1;
    }
    unsigned int index = if_nametoindex(ifname);
    int hops = 255;
    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &index, sizeof index);
    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops);
    unsigned char ra[16 + 32];
    memset(ra, 0, sizeof ra);
    ra[0] = 134;  /* router advertisement; the kernel fills in the checksum */
    ra[4] = 64;   /* hop limit */
    ra[6] = 0x07; /* router lifetime 1800 s */
    ra[7] = 0x08;
    unsigned char *option = ra + 16;
    option[0] = 3; /* prefix information */
    option[1] = 4; /* 32 bytes */
    option[2] = 64;
    option[3] = 0xc0; /* on-link, autonomous */
    memset(option + 4, 0xff, 4);  /* valid lifetime: infinite */
    memset(option + 8, 0xff, 4);  /* preferred lifetime: infinite */
    if (inet_pton(AF_INET6, prefix, option + 16) != 1) {
        printf("router-advert: bad prefix %s\n", prefix);
        return 2;
    }
    struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_scope_id = index};
    inet_pton(AF_INET6, "ff02::1", &to.sin6_addr);
    for (int attempt = 0; attempt < 50; attempt++) {
        if (sendto(fd, ra, sizeof ra, 0, (struct sockaddr *)&to, sizeof to) == (ssize_t)sizeof ra) {
            printf("router-advert: sent on %s\n", ifname);
            return 0;
        }
        if (errno != EADDRNOTAVAIL) break;
        usleep(100 * 1000);
    }
    printf("router-advert: send on %s: %s\n", ifname, strerror(errno));
    return 1;
}
#endif

/* An ordinary workload: answers every UDP datagram on `port` with the same bytes, for ever. */
static int udp_echo(const char *port) {
    int fd = socket(AF_INET6, SOCK_DGRAM, 0);
    int off = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    struct sockaddr_in6 at = {.sin6_family = AF_INET6, .sin6_port = htons((unsigned short)atoi(port))};
    if (fd < 0 || bind(fd, (struct sockaddr *)&at, sizeof at) < 0) {
        printf("udp-echo: cannot bind port %s: %s\n", port, strerror(errno));
        return 1;
    }
    for (;;) {
        char buf[2048];
        struct sockaddr_in6 from;
        socklen_t length = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &length);
        if (n > 0) sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, length);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: probe ATTEMPT [ARG]\n");
        return 2;
    }
    const char *what = argv[1];
    if (strcmp(what, "raw-socket") == 0) return raw_socket();
    if (strcmp(what, "mknod") == 0) return device_node();
    if (strcmp(what, "udp-echo") == 0 && argc > 2) return udp_echo(argv[2]);
#ifdef __linux__
    if (strcmp(what, "keyctl") == 0) return keyring();
    if (strcmp(what, "init-module") == 0) return load_module();
    if (strcmp(what, "reboot") == 0) return reboot_host();
    if (strcmp(what, "open-by-handle") == 0) return file_handle();
    if (strcmp(what, "bpf") == 0) return bpf_map();
    if (strcmp(what, "perf") == 0) return perf_event();
    if (strcmp(what, "settime") == 0) return set_clock();
    if (strcmp(what, "swapon") == 0) return swap();
    if (strcmp(what, "setns") == 0) return join_namespace();
    if (strcmp(what, "unshare") == 0 && argc > 2) return new_namespace(argv[2]);
    if (strcmp(what, "clone3") == 0) return clone3_call();
    if (strcmp(what, "ptrace-init") == 0) return trace_init();
    if (strcmp(what, "ping") == 0 && argc > 2) return ping(argv[2]);
    if (strcmp(what, "frame") == 0 && argc > 8) return udp_frame(argv);
    if (strcmp(what, "arp-reply") == 0 && argc > 4) return arp_reply(argv);
    if (strcmp(what, "router-advert") == 0 && argc > 3) return router_advert(argv[2], argv[3]);
#endif
    fprintf(stderr, "probe: unknown attempt %s\n", what);
    return 2;
}
