/*
 * mqtt_broker.h — a private mosquitto broker and simulated devices for the mqtt executor's
 * tests and benchmark: the broker's configuration in a temporary directory, 127.0.0.1 and a
 * free port; every process started here is stopped by its pid, never by name.
 */
#ifndef MQTT_BROKER_H
#define MQTT_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MQTT_BROKER_PATH     "/usr/sbin/mosquitto"
#define MQTT_PASSWD_PATH     "/usr/bin/mosquitto_passwd"
#define MQTT_BROKER_START_MS 5000 /* until the broker accepts connections */
#define MQTT_SIM_START_MS    5000 /* until a device sim's subscription is granted */
#define MQTT_BROKER_DIR_MAX  64u

struct mqtt_broker {
    pid_t pid;     /* 0: not running */
    uint16_t port; /* chosen by the first start, kept by restarts */
    char dir[MQTT_BROKER_DIR_MAX];
    const char *extra_conf; /* more configuration lines, or NULL */
};

/** True when the broker is installed (tests exit 77 without it). Can't fail. */
bool mqtt_broker_available(void);

/**
 * Start the broker: on a free port the first time, on the same port after
 * mqtt_broker_kill (a restart). Waits until it accepts TCP connections. Returns 0, -ENOENT
 * when the broker is not installed, -ETIMEDOUT, or -errno of mkdtemp/fork/...
 */
int mqtt_broker_start(struct mqtt_broker *b);

/** SIGKILL the broker and reap it; the port and directory stay for a restart. */
void mqtt_broker_kill(struct mqtt_broker *b);

/** SIGSTOP (pause) or SIGCONT the broker: its connections stay open, unanswered. */
void mqtt_broker_pause(struct mqtt_broker *b, bool pause);

/**
 * Write b->dir/passwd holding user with password (mosquitto_passwd), for a
 * "password_file" line in extra_conf before the start; path_out gets its path. Returns 0,
 * -ENOENT without mosquitto_passwd, -EIO, or -errno of mkdtemp.
 */
int mqtt_broker_passwd(struct mqtt_broker *b, const char *user, const char *password,
                       char *path_out, size_t cap);

/**
 * Write text to b->dir/name (an ACL file, say) before the start; path_out gets its path.
 * Returns 0 or -errno.
 */
int mqtt_broker_file(struct mqtt_broker *b, const char *name, const char *text, char *path_out,
                     size_t cap);

/** Kill the broker if it runs and remove its directory. Safe on a zeroed struct. */
void mqtt_broker_cleanup(struct mqtt_broker *b);

/**
 * Start sigflow-device-sim (path) against b with the extra arguments argv_extra (NULL
 * terminated, may be NULL); its stdout goes to b->dir/sim-N.out, stderr to sim-N.err. Waits
 * until it reports its subscription. Returns its pid, or -errno (-ETIMEDOUT).
 */
pid_t mqtt_sim_start(const struct mqtt_broker *b, const char *path, const char *const *argv_extra);

/** SIGTERM pid, wait up to 2 s, then SIGKILL; reap it. Returns its wait status. */
int mqtt_child_stop(pid_t pid);

#endif
