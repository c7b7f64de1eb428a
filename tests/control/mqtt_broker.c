/*
 * mqtt_broker.c — a private mosquitto broker and device sims for tests (mqtt_broker.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mqtt_broker.h"

#define MQTT_POLL_MS      10
#define MQTT_STOP_WAIT_MS 2000
#define MQTT_ARGV_MAX     32u
#define MQTT_PATH_MAX     (MQTT_BROKER_DIR_MAX + 32u)

static void mqtt_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

bool mqtt_broker_available(void)
{
    return access(MQTT_BROKER_PATH, X_OK) == 0;
}

/* A TCP port on 127.0.0.1 nobody listens on now (the kernel's choice), or 0. */
static uint16_t mqtt_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    uint16_t port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static bool mqtt_port_accepts(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_port = htons(port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static int mqtt_conf_write(const struct mqtt_broker *b)
{
    char path[MQTT_PATH_MAX];
    snprintf(path, sizeof(path), "%s/mosquitto.conf", b->dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    /* queues above any test's attempts in flight: a full queue drops QoS 1 messages */
    fprintf(f,
            "listener %u 127.0.0.1\npersistence false\n"
            "max_queued_messages 200000\nmax_inflight_messages 0\nlog_dest stderr\n%s\n",
            b->port, b->extra_conf ? b->extra_conf : "allow_anonymous true");
    return fclose(f) == 0 ? 0 : -errno;
}

/* fork + exec argv with stdout/stderr to files (NULL: /dev/null). Returns the pid or -errno. */
static pid_t mqtt_spawn(char *const *argv, const char *out, const char *err)
{
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        int o = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err ? err : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int n = open("/dev/null", O_RDONLY);
        if (o < 0 || e < 0 || n < 0 || dup2(n, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(127);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* b->dir, made once: 0 or -errno. */
static int mqtt_dir_make(struct mqtt_broker *b)
{
    if (b->dir[0] != '\0')
        return 0;
    snprintf(b->dir, sizeof(b->dir), "/tmp/sf-mqtt-test-XXXXXX");
    if (!mkdtemp(b->dir)) {
        b->dir[0] = '\0';
        return -errno;
    }
    chmod(b->dir, 0755); /* the broker, started as root, goes on as user mosquitto */
    return 0;
}

int mqtt_broker_start(struct mqtt_broker *b)
{
    if (!mqtt_broker_available())
        return -ENOENT;
    int made = mqtt_dir_make(b);
    if (made != 0)
        return made;
    bool fixed = b->port != 0;
    for (int tries = 0; tries < 3; tries++) {
        if (!fixed)
            b->port = mqtt_free_port();
        int rc = mqtt_conf_write(b);
        if (rc != 0)
            return rc;
        char conf[MQTT_PATH_MAX], log[MQTT_PATH_MAX];
        snprintf(conf, sizeof(conf), "%s/mosquitto.conf", b->dir);
        snprintf(log, sizeof(log), "%s/broker.log", b->dir);
        char *argv[] = { MQTT_BROKER_PATH, "-c", conf, NULL };
        pid_t pid = mqtt_spawn(argv, log, log);
        if (pid < 0)
            return (int)pid;
        for (int waited = 0; waited < MQTT_BROKER_START_MS; waited += MQTT_POLL_MS) {
            if (mqtt_port_accepts(b->port)) {
                b->pid = pid;
                return 0;
            }
            if (waitpid(pid, NULL, WNOHANG) == pid) {
                pid = 0; /* it exited: the port was taken meanwhile, or restarting too soon */
                break;
            }
            mqtt_sleep_ms(MQTT_POLL_MS);
        }
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return -ETIMEDOUT;
        }
        if (fixed)
            mqtt_sleep_ms(100);
    }
    return -ETIMEDOUT;
}

void mqtt_broker_kill(struct mqtt_broker *b)
{
    if (b->pid <= 0)
        return;
    kill(b->pid, SIGKILL);
    waitpid(b->pid, NULL, 0);
    b->pid = 0;
}

void mqtt_broker_pause(struct mqtt_broker *b, bool pause)
{
    if (b->pid > 0)
        kill(b->pid, pause ? SIGSTOP : SIGCONT);
}

int mqtt_broker_passwd(struct mqtt_broker *b, const char *user, const char *password,
                       char *path_out, size_t cap)
{
    if (access(MQTT_PASSWD_PATH, X_OK) != 0)
        return -ENOENT;
    int made = mqtt_dir_make(b);
    if (made != 0)
        return made;
    snprintf(path_out, cap, "%s/passwd", b->dir);
    char *argv[] = { MQTT_PASSWD_PATH, "-b", "-c", path_out, (char *)user, (char *)password, NULL };
    int status;
    pid_t pid = mqtt_spawn(argv, NULL, NULL);
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
        return -EIO;
    chmod(path_out, 0644);
    return 0;
}

int mqtt_broker_file(struct mqtt_broker *b, const char *name, const char *text, char *path_out,
                     size_t cap)
{
    int made = mqtt_dir_make(b);
    if (made != 0)
        return made;
    snprintf(path_out, cap, "%s/%s", b->dir, name);
    FILE *f = fopen(path_out, "w");
    if (!f)
        return -errno;
    fputs(text, f);
    if (fclose(f) != 0)
        return -errno;
    chmod(path_out, 0644);
    return 0;
}

static int mqtt_rm(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

void mqtt_broker_cleanup(struct mqtt_broker *b)
{
    mqtt_broker_kill(b);
    if (b->dir[0])
        nftw(b->dir, mqtt_rm, 8, FTW_DEPTH | FTW_PHYS);
    b->dir[0] = '\0';
    b->port = 0;
}

/* True once the file at path holds needle. */
static bool mqtt_file_has(const char *path, const char *needle)
{
    char buf[4096];
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

pid_t mqtt_sim_start(const struct mqtt_broker *b, const char *path, const char *const *argv_extra)
{
    static unsigned sims;
    char port[8], out[MQTT_PATH_MAX], err[MQTT_PATH_MAX];
    snprintf(port, sizeof(port), "%u", b->port);
    snprintf(out, sizeof(out), "%s/sim-%u.out", b->dir, sims);
    snprintf(err, sizeof(err), "%s/sim-%u.err", b->dir, sims);
    sims++;
    char *argv[MQTT_ARGV_MAX];
    unsigned n = 0;
    argv[n++] = (char *)path;
    argv[n++] = "--port";
    argv[n++] = port;
    for (unsigned i = 0; argv_extra && argv_extra[i] && n + 1 < MQTT_ARGV_MAX; i++)
        argv[n++] = (char *)argv_extra[i];
    argv[n] = NULL;
    pid_t pid = mqtt_spawn(argv, out, err);
    if (pid < 0)
        return pid;
    for (int waited = 0; waited < MQTT_SIM_START_MS; waited += MQTT_POLL_MS) {
        if (mqtt_file_has(err, "subscribed to"))
            return pid;
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return -ECHILD;
        mqtt_sleep_ms(MQTT_POLL_MS);
    }
    mqtt_child_stop(pid);
    return -ETIMEDOUT;
}

int mqtt_child_stop(pid_t pid)
{
    int status = 0;
    if (pid <= 0)
        return 0;
    kill(pid, SIGTERM);
    for (int waited = 0; waited < MQTT_STOP_WAIT_MS; waited += MQTT_POLL_MS) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
        mqtt_sleep_ms(MQTT_POLL_MS);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return status;
}
