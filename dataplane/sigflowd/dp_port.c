/*
 * dp_port.c — the rx sources: DPDK ports (PCI or vdev, several RX queues with RSS where
 * the device supports it) and the kernel-socket source (recvmmsg on SO_REUSEPORT sockets).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rte_ethdev.h>
#include <rte_log.h>

#include "dp.h"
#include "dp_rx.h"

#define DP_LOG(level, fmt, ...) RTE_LOG(level, USER1, "sigflowd: " fmt "\n", ##__VA_ARGS__)

static int dp_port_configure(struct dp_node *node, struct dp_port *p)
{
    struct rte_eth_dev_info info;
    struct rte_eth_conf conf;
    int rc = rte_eth_dev_info_get(p->port_id, &info);
    if (rc != 0)
        return rc;
    memset(&conf, 0, sizeof(conf));
    p->rx_queues = RTE_MIN(node->cfg.rx_queues, info.max_rx_queues);
    p->rx_queues = RTE_MIN(p->rx_queues, info.max_tx_queues);
    if (p->rx_queues < node->cfg.rx_queues)
        DP_LOG(WARNING, "port %s supports %u queues, using %u", p->name, p->rx_queues,
               p->rx_queues);
    uint64_t rss = (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
    if (p->rx_queues > 1 && rss != 0) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_hf = rss;
    }
    /* TX queue q carries the replies to what arrived on RX queue q (same lcore). */
    rc = rte_eth_dev_configure(p->port_id, (uint16_t)p->rx_queues, (uint16_t)p->rx_queues, &conf);
    if (rc != 0)
        return rc;
    uint16_t rxd = (uint16_t)node->cfg.rx_desc, txd = (uint16_t)node->cfg.tx_desc;
    rc = rte_eth_dev_adjust_nb_rx_tx_desc(p->port_id, &rxd, &txd);
    if (rc != 0)
        return rc;
    int socket = rte_eth_dev_socket_id(p->port_id);
    for (uint16_t q = 0; q < p->rx_queues; q++) {
        rc = rte_eth_rx_queue_setup(p->port_id, q, rxd, (unsigned)socket, NULL, node->pool);
        if (rc != 0)
            return rc;
        rc = rte_eth_tx_queue_setup(p->port_id, q, txd, (unsigned)socket, NULL);
        if (rc != 0)
            return rc;
    }
    struct rte_ether_addr mac;
    rc = rte_eth_macaddr_get(p->port_id, &mac);
    if (rc != 0)
        return rc;
    memcpy(p->addr.mac, mac.addr_bytes, 6);
    memcpy(p->addr.ip4, node->cfg.ipv4, 4);
    memcpy(p->addr.ip6, node->cfg.ipv6, 16);
    pkt_ip6_link_local(p->addr.mac, p->addr.ip6_ll);
    p->addr.udp_port = node->cfg.udp_port;
    rc = rte_eth_dev_start(p->port_id);
    if (rc != 0)
        return rc;
    rte_eth_promiscuous_enable(p->port_id); /* may be unsupported: not an error */
    DP_LOG(INFO, "port %s (id %u) up: %u rx/tx queues, rss %s, mac %02x:%02x:%02x:%02x:%02x:%02x",
           p->name, p->port_id, p->rx_queues, conf.rxmode.mq_mode ? "on" : "off", mac.addr_bytes[0],
           mac.addr_bytes[1], mac.addr_bytes[2], mac.addr_bytes[3], mac.addr_bytes[4],
           mac.addr_bytes[5]);
    return 0;
}

int dp_ports_init(struct dp_node *node)
{
    for (unsigned i = 0; i < node->cfg.port_count; i++) {
        struct dp_port *p = &node->ports[i];
        strcpy(p->name, node->cfg.ports[i]);
        if (rte_eth_dev_get_port_by_name(p->name, &p->port_id) != 0) {
            DP_LOG(ERR, "port '%s' not found (give the device to EAL: -a PCI or --vdev)", p->name);
            return -ENODEV;
        }
        if (p->port_id != i) {
            DP_LOG(ERR, "port '%s' has id %u: list ports in EAL order", p->name, p->port_id);
            return -EINVAL;
        }
        int rc = dp_port_configure(node, p);
        if (rc != 0) {
            DP_LOG(ERR, "port %s: setup failed: %s", p->name, rte_strerror(-rc));
            return rc;
        }
        node->port_count++;
    }
    return 0;
}

void dp_ports_close(struct dp_node *node)
{
    for (unsigned i = 0; i < node->port_count; i++) {
        rte_eth_dev_stop(node->ports[i].port_id);
        rte_eth_dev_close(node->ports[i].port_id);
    }
    node->port_count = 0;
}

static int dp_socket_open(const struct dp_config *cfg)
{
    int fd = socket(cfg->has_ipv4 || !cfg->has_ipv6 ? AF_INET : AF_INET6,
                    SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, buf = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
    int rc;
    if (cfg->has_ipv4 || !cfg->has_ipv6) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(cfg->udp_port) };
        memcpy(&sa.sin_addr, cfg->ipv4, 4);
        rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    } else {
        struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons(cfg->udp_port) };
        memcpy(&sa.sin6_addr, cfg->ipv6, 16);
        rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    }
    if (rc != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

int dp_socket_source_init(struct dp_node *node)
{
    for (unsigned i = 0; i < node->rx_count; i++) {
        int fd = dp_socket_open(&node->cfg);
        if (fd < 0) {
            DP_LOG(ERR, "socket source: bind udp port %u: %s", node->cfg.udp_port, strerror(-fd));
            return fd;
        }
        node->rx_by_index[i]->sock_fd = fd;
    }
    DP_LOG(INFO, "socket source: %u SO_REUSEPORT sockets on udp port %u", node->rx_count,
           node->cfg.udp_port);
    return 0;
}
