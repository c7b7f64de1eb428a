/* test_pkt_tap.c — the Linux kernel as the peer: in a private network namespace, a TAP
 * device carries the kernel's real ARP, NDP, ICMP/ICMPv6 echo and UDP to pkt_classify();
 * the replies pkt_build_reply()/pkt_build_udp_reply() write back must satisfy the kernel
 * (ping succeeds, UDP sockets receive the echoed datagram). Root only; exits 77 (skipped)
 * when it cannot create the namespace or the TAP device. Traffic never leaves the
 * namespace, which disappears with the process. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pkt.h"

#define TAP_NAME       "sfpkt0"
#define TAP_DEADLINE_S 30
#define TAP_FRAME_MAX  2048u
#define TAP_UDP_TRIES  10
#define TAP_SKIP       77

static const uint8_t tap_node_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x05, 0x02 };

static int tap_sh(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "test_pkt_tap: '%s' -> %d\n", cmd, rc);
    return rc;
}

static int tap_open(void)
{
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", TAP_NAME);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* Child: UDP round trip through the node (it echoes the payload back as the "ACK"). */
static int tap_udp_roundtrip(int family, const char *addr, uint16_t port)
{
    int s = socket(family, SOCK_DGRAM, 0);
    if (s < 0)
        return 1;
    struct timeval tv = { .tv_sec = 1 };
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        inet_pton(AF_INET, addr, &a->sin_addr);
        sl = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        inet_pton(AF_INET6, addr, &a->sin6_addr);
        sl = sizeof *a;
    }
    const char msg[] = "signal-over-tap";
    for (int i = 0; i < TAP_UDP_TRIES; i++) {
        if (sendto(s, msg, sizeof msg, 0, (struct sockaddr *)&ss, sl) != (ssize_t)sizeof msg)
            continue;
        char buf[256];
        ssize_t n = recv(s, buf, sizeof buf, 0);
        if (n == (ssize_t)sizeof msg && memcmp(buf, msg, sizeof msg) == 0) {
            close(s);
            return 0;
        }
    }
    close(s);
    fprintf(stderr, "test_pkt_tap: no UDP echo from %s\n", addr);
    return 1;
}

static int tap_child(const char *iface)
{
    char ll_ping[128];
    snprintf(ll_ping, sizeof ll_ping,
             "ping -q -6 -c 2 -i 0.2 -W 2 fe80::ff:fe00:502%%%s >/dev/null", iface);
    int bad = 0;
    bad |= tap_sh("ping -q -c 3 -i 0.2 -W 2 198.18.5.2 >/dev/null");
    bad |= tap_sh("ping -q -6 -c 3 -i 0.2 -W 2 2001:db8:5::2 >/dev/null");
    bad |= tap_sh(ll_ping);
    bad |= tap_udp_roundtrip(AF_INET, "198.18.5.2", 7709);
    bad |= tap_udp_roundtrip(AF_INET6, "2001:db8:5::2", 7709);
    return bad ? 1 : 0;
}

/* seen[]: verdict counts, then reply failures, then answers that lost the expected tag */
#define TAP_SEEN_FAILED   PKT_VERDICT_COUNT
#define TAP_SEEN_BAD_VLAN (PKT_VERDICT_COUNT + 1)

static void tap_serve_one(int fd, const struct pkt_node_cfg *node, uint8_t *frame, size_t len,
                          int vlan, unsigned long *seen)
{
    static uint8_t out[TAP_FRAME_MAX];
    struct pkt_info info;
    enum pkt_verdict v = pkt_classify(frame, len, node, &info);
    seen[v]++;
    if ((pkt_verdict_is_reply(v) || v == PKT_EVENT) &&
        (info.has_vlan != (vlan >= 0) || (vlan >= 0 && (info.vlan_tci & 0xfff) != vlan)))
        seen[TAP_SEEN_BAD_VLAN]++;
    int n = -1;
    if (pkt_verdict_is_reply(v)) {
        n = pkt_build_reply(frame, len, &info, v, node, frame, len); /* in place, like RX */
        if (n > 0 && write(fd, frame, (size_t)n) != n)
            fprintf(stderr, "test_pkt_tap: short write\n");
    } else if (v == PKT_EVENT) {
        n = pkt_build_udp_reply(&info, node, frame + info.payload_off, info.payload_len, out,
                                sizeof out);
        if (n > 0 && write(fd, out, (size_t)n) != n)
            fprintf(stderr, "test_pkt_tap: short write\n");
    }
    if ((pkt_verdict_is_reply(v) || v == PKT_EVENT) && n <= 0) {
        fprintf(stderr, "test_pkt_tap: reply to %s failed: %d\n", pkt_verdict_name(v), n);
        seen[TAP_SEEN_FAILED]++;
    }
}

/* Serve the TAP while the child talks to the node over iface; 0 when everything answered. */
static int tap_phase(int fd, const struct pkt_node_cfg *node, const char *iface, int vlan)
{
    pid_t child = fork();
    if (child < 0)
        return 1;
    if (child == 0)
        _exit(tap_child(iface));
    unsigned long seen[PKT_VERDICT_COUNT + 2] = { 0 };
    static uint8_t frame[TAP_FRAME_MAX];
    time_t deadline = time(NULL) + TAP_DEADLINE_S;
    int status = -1;
    while (time(NULL) < deadline) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (poll(&pfd, 1, 100) > 0) {
            ssize_t n = read(fd, frame, sizeof frame);
            if (n > 0)
                tap_serve_one(fd, node, frame, (size_t)n, vlan, seen);
        }
        if (waitpid(child, &status, WNOHANG) == child)
            break;
    }
    if (status == -1) {
        kill(child, SIGKILL);
        waitpid(child, &status, 0);
        fprintf(stderr, "test_pkt_tap: %s: deadline\n", iface);
        return 1;
    }
    fprintf(stderr, "test_pkt_tap: %s (vlan %d)\n", iface, vlan);
    for (int v = 0; v < PKT_VERDICT_COUNT; v++)
        if (seen[v])
            fprintf(stderr, "  %-20s %lu\n", pkt_verdict_name((enum pkt_verdict)v), seen[v]);
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && seen[TAP_SEEN_FAILED] == 0 &&
              seen[TAP_SEEN_BAD_VLAN] == 0 && seen[PKT_ARP_REQUEST] >= 1 &&
              seen[PKT_ICMP_ECHO] >= 3 && seen[PKT_NDP_SOLICIT] >= 1 && seen[PKT_ICMP6_ECHO] >= 5 &&
              seen[PKT_EVENT] >= 2;
    fprintf(stderr, "  -> %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}

int main(void)
{
    if (geteuid() != 0 || unshare(CLONE_NEWNET) != 0) {
        fprintf(stderr, "test_pkt_tap: needs root and network namespaces: skipped\n");
        return TAP_SKIP;
    }
    int fd = tap_open();
    if (fd < 0) {
        fprintf(stderr, "test_pkt_tap: no TAP device (%s): skipped\n", strerror(-fd));
        return TAP_SKIP;
    }
    if (tap_sh("ip link set lo up") || tap_sh("ip link set " TAP_NAME " up") ||
        tap_sh("ip addr add 198.18.5.1/24 dev " TAP_NAME) ||
        tap_sh("ip -6 addr add 2001:db8:5::1/64 dev " TAP_NAME " nodad"))
        return 1;
    struct pkt_node_cfg node;
    memset(&node, 0, sizeof node);
    memcpy(node.mac, tap_node_mac, 6);
    inet_pton(AF_INET, "198.18.5.2", node.ip4);
    inet_pton(AF_INET6, "2001:db8:5::2", node.ip6);
    pkt_ip6_link_local(node.mac, node.ip6_ll);
    node.udp_port = 7709;

    if (tap_phase(fd, &node, TAP_NAME, -1) != 0)
        return 1;
    /* the same conversation through an 802.1Q sub-interface: tagged frames both ways (only
     * where the kernel has 802.1Q support) */
    if (tap_sh("ip addr flush dev " TAP_NAME))
        return 1;
    if (tap_sh("ip link add link " TAP_NAME " name " TAP_NAME ".7 type vlan id 7 2>/dev/null")) {
        fprintf(stderr, "test_pkt_tap: kernel without 802.1Q: tagged phase skipped\n");
        close(fd);
        return 0;
    }
    if (tap_sh("ip link set " TAP_NAME ".7 up") ||
        tap_sh("ip addr add 198.18.5.1/24 dev " TAP_NAME ".7") ||
        tap_sh("ip -6 addr add 2001:db8:5::1/64 dev " TAP_NAME ".7 nodad"))
        return 1;
    if (tap_phase(fd, &node, TAP_NAME ".7", 7) != 0)
        return 1;
    close(fd);
    return 0;
}
