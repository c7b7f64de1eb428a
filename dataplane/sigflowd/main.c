/*
 * sigflowd — the sigflow dataplane daemon (a DPDK primary process).
 *
 *   sigflowd [EAL args] -- --config FILE [--dir DIR]
 *
 * Start-up sizes and allocates everything (mempool, rings, per-partition workflow tables in
 * 2 MB pages), starts the ports, then runs the same loop on every lcore: rx (receive,
 * classify, route to owners) and owner (drain rings, apply), with an idle back-off so quiet
 * nodes leave the CPU to others. A control thread serves sigflowctl on a unix socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>

#include "dp.h"
#include "dp_chan.h"
#include "dp_ack.h"
#include "dp_ctl.h"
#include "dp_fault.h"
#include "dp_owner.h"
#include "dp_recover.h"
#include "dp_runtime.h"
#include "dp_rx.h"
#include "dp_senders.h"
#include "dp_snap.h"
#include "dp_wal.h"
#include "sf_mem.h"

static void dp_on_signal(int sig)
{
    (void)sig;
    dp_node.force_quit = true;
}

static void dp_on_hup(int sig)
{
    (void)sig;
    dp_senders_reload_async();
}

static void dp_usage(void)
{
    fprintf(stderr,
            "usage: sigflowd [EAL args] -- --config FILE [--dir DIR]\n"
            "  --config FILE  INI configuration (README.md, 'Configuration')\n"
            "  --dir DIR      runtime directory (control socket, pid); overrides [node] dir\n");
}

static int dp_parse_args(int argc, char **argv, const char **config, const char **dir)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "dir", required_argument, NULL, 'd' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:d:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            *config = optarg;
            break;
        case 'd':
            *dir = optarg;
            break;
        default:
            dp_usage();
            return -1;
        }
    }
    if (!*config || optind != argc) {
        dp_usage();
        return -1;
    }
    return 0;
}

static int dp_write_pid(const char *dir)
{
    char path[DP_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/sigflowd.pid", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    fprintf(f, "%d\n", (int)getpid());
    return fclose(f) == 0 ? 0 : -errno;
}

/*
 * The node's hash secret, DIR/hash.secret (wf_key.h "KEYED"): WF_KEY_SECRET_LEN random
 * bytes, mode 0600, created with the node's data and kept for its life (its keys are in the
 * snapshots and logs). A data directory from before keyed hashing (a MANIFEST but no
 * secret) keeps the public hash: its layout must not change. Returns 0, or -errno with the
 * reason printed (a secret that is not ours, readable by others or of the wrong size).
 */
static int dp_hash_secret(const char *dir)
{
    char path[DP_PATH_MAX + 32], manifest[DP_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/hash.secret", dir);
    snprintf(manifest, sizeof(manifest), "%s/MANIFEST", dir);
    uint8_t secret[WF_KEY_SECRET_LEN];
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (access(manifest, F_OK) == 0) {
            fprintf(stderr,
                    "sigflowd: WARNING: %s: none; this node's data uses the public "
                    "workflow hash (ids that collide can be computed offline). A new "
                    "node gets a secret.\n",
                    path);
            return 0;
        }
        if (getrandom(secret, sizeof(secret), 0) != (ssize_t)sizeof(secret))
            return -errno;
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, secret, sizeof(secret)) != (ssize_t)sizeof(secret) ||
            fsync(fd) != 0) {
            int e = errno;
            fprintf(stderr, "sigflowd: %s: can't create: %s\n", path, strerror(e));
            if (fd >= 0)
                close(fd);
            return -e;
        }
        close(fd);
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        return wf_key_use_secret(secret);
    }
    if (fd < 0) {
        int e = errno;
        fprintf(stderr, "sigflowd: %s: %s\n", path, strerror(e));
        return -e;
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 077) != 0 || st.st_size != (off_t)sizeof(secret)) {
        fprintf(stderr,
                "sigflowd: %s: must be a regular file of %u bytes, ours, mode 0600; "
                "refusing to start\n",
                path, WF_KEY_SECRET_LEN);
        rc = -EPERM;
    } else if (read(fd, secret, sizeof(secret)) != (ssize_t)sizeof(secret)) {
        rc = -EIO;
        fprintf(stderr, "sigflowd: %s: short read\n", path);
    } else if (wf_key_use_secret(secret) != 0) {
        rc = -EINVAL;
        fprintf(stderr, "sigflowd: %s: not a secret (all bytes equal)\n", path);
    }
    close(fd);
    return rc;
}

int main(int argc, char **argv)
{
    int eal_args = rte_eal_init(argc, argv);
    if (eal_args < 0) {
        fprintf(stderr, "sigflowd: EAL init failed: %s\n", rte_strerror(rte_errno));
        return 1;
    }
    argc -= eal_args;
    argv += eal_args;
    const char *config = NULL, *dir = NULL;
    if (dp_parse_args(argc, argv, &config, &dir) != 0)
        return 64;
    dp_config_defaults(&dp_node.cfg);
    char err[512];
    if (dp_config_load(&dp_node.cfg, config, err, sizeof(err)) != 0) {
        fprintf(stderr, "sigflowd: %s\n", err);
        return 78; /* EX_CONFIG */
    }
    if (dir)
        snprintf(dp_node.cfg.dir, sizeof(dp_node.cfg.dir), "%s", dir);
    if (mkdir(dp_node.cfg.dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "sigflowd: mkdir %s: %s\n", dp_node.cfg.dir, strerror(errno));
        return 73;
    }
    chmod(dp_node.cfg.dir, 0700);
    if (dp_hash_secret(dp_node.cfg.dir) != 0)
        return 78;
    dp_clock_init();
    signal(SIGINT, dp_on_signal);
    signal(SIGTERM, dp_on_signal);
    signal(SIGPIPE, SIG_IGN);

    int rc = dp_node_setup(&dp_node);
    if (rc != 0) {
        fprintf(stderr, "sigflowd: start-up failed: %s\n", strerror(-rc));
        return 1;
    }
    if (dp_node.cfg.wal_enabled)
        rc = dp_snap_init(&dp_node);
    if (rc == 0)
        rc = dp_recover_all(&dp_node);
    if (rc != 0) {
        fprintf(stderr, "sigflowd: start-up failed: %s\n", strerror(-rc));
        return 1;
    }
    rc = dp_senders_start(&dp_node);
    if (rc != 0) {
        fprintf(stderr, "sigflowd: authenticated senders: %s; refusing to start\n", strerror(-rc));
        return 78;
    }
    signal(SIGHUP, dp_on_hup);
    char sock[DP_PATH_MAX + 32];
    snprintf(sock, sizeof(sock), "%s/sigflowd.sock", dp_node.cfg.dir);
    rc = dp_ctl_start(&dp_node, sock);
    if (rc != 0) {
        fprintf(stderr, "sigflowd: control socket %s: %s\n", sock, strerror(-rc));
        return 1;
    }
    char chan_sock[DP_PATH_MAX + 32];
    snprintf(chan_sock, sizeof(chan_sock), "%s/activity.sock", dp_node.cfg.dir);
    rc = dp_chan_start(&dp_node, chan_sock);
    if (rc != 0) {
        fprintf(stderr, "sigflowd: activity socket %s: %s\n", chan_sock, strerror(-rc));
        return 1;
    }
    dp_write_pid(dp_node.cfg.dir);
    fprintf(stderr,
            "sigflowd: ready: %u lcores (%u rx, %u owners), %u partitions, udp port %u, "
            "control socket %s\n",
            dp_node.lcore_count, dp_node.rx_count, dp_node.owner_count, dp_node.cfg.partitions,
            dp_node.cfg.udp_port, sock);
    rte_eal_mp_remote_launch(dp_lcore_main, NULL, CALL_MAIN);
    rte_eal_mp_wait_lcore();

    fprintf(stderr, "sigflowd: stopping\n");
    dp_ctl_stop();
    dp_chan_stop();
    if (dp_node.power_cut_seed)
        dp_fault_power_cut_finish(&dp_node);
    if (dp_node.fatal) {
        /* A failed log: exit at once, for a clean recovery; never flush what failed. */
        fprintf(stderr, "sigflowd: %s\n", dp_node.fatal_reason);
        _exit(70); /* EX_SOFTWARE */
    }
    dp_senders_stop(&dp_node);
    dp_snap_close(&dp_node);
    dp_wal_close_all(&dp_node);
    dp_ports_close(&dp_node);
    dp_node_free(&dp_node);
    rte_eal_cleanup();
    return 0;
}
