/* attempt: one escape attempt per subcommand, run inside a container by tests/test_security.py.
 *
 * Each prints "ok" (exit 0) when the kernel let it through, or the errno's name (exit 1) when it
 * refused. None of them changes the host: files are opened for writing and closed unwritten,
 * mounts are read-only and vanish with the container's mount namespace, the module is garbage
 * the kernel cannot load, traced processes are detached at once.
 *
 *   attempt open-write PATH              open(O_WRONLY|O_APPEND), close
 *   attempt open-read PATH               open(O_RDONLY), close
 *   attempt mknod-open b|c MAJOR MINOR   mknod a node in /tmp, open it read-only
 *   attempt mount SOURCE TARGET FSTYPE [DATA]   mount(2) read-only
 *   attempt module                       init_module(64 zero bytes)
 *   attempt ptrace PID                   PTRACE_SEIZE, then detach
 *   attempt release-agent DIR CONTROLLER mount a v1 cgroup hierarchy on DIR, open its release_agent for writing
 *   attempt keyctl                       KEYCTL_GET_KEYRING_ID of the user keyring
 *   attempt clone FLAGS                  clone(FLAGS|SIGCHLD) (hex); the child exits at once
 *   attempt clone3                       clone3 with no flags
 *   attempt socket FAMILY                socket(FAMILY, SOCK_STREAM, 0)
 *   attempt unshare-user                 unshare(CLONE_NEWUSER)
 *   attempt euid                         print the effective uid (installed setuid root by a test)
 *   attempt udp IFACE SRC_IP DST_MAC DST_IP PORT        a raw frame: UDP "knock"
 *   attempt syn IFACE SRC_IP DST_MAC DST_IP PORT        a raw SYN; "ok" when a SYN-ACK comes back
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

static int report(long result) {
    if (result >= 0) {
        puts("ok");
        return 0;
    }
    puts(strerrorname_np(errno) ? strerrorname_np(errno) : "EUNKNOWN");
    return 1;
}

static unsigned short checksum(const void *data, size_t len, unsigned long sum) {
    const unsigned short *p = data;
    for (; len > 1; len -= 2) sum += *p++;
    if (len) sum += *(const unsigned char *)p;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (unsigned short)~sum;
}

static unsigned long pseudo_sum(struct iphdr *ip, int proto, int len) {
    struct { unsigned int s, d; unsigned char z, p; unsigned short l; } ph = {ip->saddr, ip->daddr, 0, proto, htons(len)};
    const unsigned short *p = (const unsigned short *)&ph;
    unsigned long sum = 0;
    for (size_t i = 0; i < sizeof ph / 2; i++) sum += p[i];
    return sum;
}

/* An IPv4 packet for DST_IP, handed to the driver with DST_MAC as the link-layer destination. */
static int send_raw(char **argv, int tcp, int *sock_out, struct tcphdr *sent) {
    unsigned char packet[64] = {0}, mac[6];
    struct iphdr *ip = (struct iphdr *)packet;
    int sock = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP));
    if (sock < 0) return -1;
    sscanf(argv[4], "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4], &mac[5]);
    int l4 = tcp ? sizeof(struct tcphdr) : sizeof(struct udphdr) + 5;
    ip->version = 4, ip->ihl = 5, ip->ttl = 64, ip->protocol = tcp ? IPPROTO_TCP : IPPROTO_UDP;
    ip->tot_len = htons(sizeof *ip + l4), ip->id = htons(getpid());
    ip->saddr = inet_addr(argv[3]), ip->daddr = inet_addr(argv[5]);
    ip->check = checksum(ip, sizeof *ip, 0);
    if (tcp) {
        struct tcphdr *t = (struct tcphdr *)(packet + sizeof *ip);
        t->source = htons(40000 + getpid() % 20000), t->dest = htons(atoi(argv[6]));
        t->seq = htonl(12345), t->doff = 5, t->syn = 1, t->window = htons(1024);
        t->check = checksum(t, l4, pseudo_sum(ip, IPPROTO_TCP, l4));
    } else {
        struct udphdr *u = (struct udphdr *)(packet + sizeof *ip);
        u->source = htons(40000), u->dest = htons(atoi(argv[6])), u->len = htons(l4);
        memcpy(packet + sizeof *ip + sizeof *u, "knock", 5);
    }
    struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP),
                             .sll_ifindex = if_nametoindex(argv[2]), .sll_halen = 6};
    memcpy(to.sll_addr, mac, 6);
    if (sendto(sock, packet, sizeof *ip + l4, 0, (struct sockaddr *)&to, sizeof to) < 0) return -1;
    *sock_out = sock;
    memcpy(sent, packet + sizeof *ip, sizeof *sent);
    return 0;
}

/* Wait up to 3 s for the SYN-ACK of our SYN, known by its ports (its source address may be NATed). */
static int syn_ack(int sock, struct tcphdr *syn) {
    unsigned char buf[2048];
    struct pollfd p = {.fd = sock, .events = POLLIN};
    while (poll(&p, 1, 3000) > 0) {
        ssize_t n = recv(sock, buf, sizeof buf, 0);
        struct iphdr *ip = (struct iphdr *)buf;
        if (n < (ssize_t)(sizeof *ip + sizeof(struct tcphdr)) || ip->protocol != IPPROTO_TCP) continue;
        struct tcphdr *t = (struct tcphdr *)(buf + ip->ihl * 4);
        if (t->source == syn->dest && t->dest == syn->source && t->syn && t->ack) return 0;
    }
    errno = ETIMEDOUT;
    return -1;
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "";
    if (!strcmp(what, "open-write") && argc == 3) {
        int fd = open(argv[2], O_WRONLY | O_APPEND);
        return report(fd >= 0 ? close(fd) : -1);
    }
    if (!strcmp(what, "open-read") && argc == 3) {
        int fd = open(argv[2], O_RDONLY);
        return report(fd >= 0 ? close(fd) : -1);
    }
    if (!strcmp(what, "mknod-open") && argc == 5) {
        const char *node = "/tmp/attempt-node";
        unlink(node);
        mode_t kind = argv[2][0] == 'b' ? S_IFBLK : S_IFCHR;
        if (mknod(node, kind | 0600, makedev(atoi(argv[3]), atoi(argv[4]))) < 0) return report(-1);
        int fd = open(node, O_RDONLY);
        int saved = errno;
        if (fd >= 0) close(fd);
        unlink(node);
        errno = saved;
        return report(fd);
    }
    if (!strcmp(what, "mount") && (argc == 5 || argc == 6))
        return report(mount(argv[2], argv[3], argv[4], MS_RDONLY, argc == 6 ? argv[5] : NULL));
    if (!strcmp(what, "module")) {
        static char garbage[64];
        return report(syscall(SYS_init_module, garbage, sizeof garbage, ""));
    }
    if (!strcmp(what, "ptrace") && argc == 3) {
        pid_t pid = atoi(argv[2]);
        long r = ptrace(PTRACE_SEIZE, pid, 0, 0);
        if (r == 0) ptrace(PTRACE_DETACH, pid, 0, 0);
        return report(r);
    }
    if (!strcmp(what, "release-agent") && argc == 4) {
        char path[4096];
        if (mount("cgroup", argv[2], "cgroup", 0, argv[3]) < 0) return report(-1);
        snprintf(path, sizeof path, "%s/release_agent", argv[2]);
        int fd = open(path, O_WRONLY | O_APPEND);
        int saved = errno;
        if (fd >= 0) close(fd);
        umount(argv[2]);
        errno = saved;
        return report(fd);
    }
    if (!strcmp(what, "clone") && argc == 3) {
        long pid = syscall(SYS_clone, strtoul(argv[2], NULL, 16) | SIGCHLD, 0, 0, 0, 0);
        if (pid == 0) _exit(0);
        if (pid > 0) waitpid(pid, NULL, 0);
        return report(pid);
    }
    if (!strcmp(what, "clone3")) {
        unsigned long long args[11] = {0};
        args[4] = SIGCHLD; /* exit_signal */
        long pid = syscall(SYS_clone3, args, sizeof args);
        if (pid == 0) _exit(0);
        if (pid > 0) waitpid(pid, NULL, 0);
        return report(pid);
    }
    if (!strcmp(what, "socket") && argc == 3) {
        int fd = socket(atoi(argv[2]), SOCK_STREAM, 0);
        return report(fd >= 0 ? close(fd) : -1);
    }
    if (!strcmp(what, "euid")) {
        printf("%d\n", geteuid());
        return 0;
    }
    if (!strcmp(what, "keyctl"))
        return report(syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -4 /* KEY_SPEC_USER_KEYRING */, 0));
    if (!strcmp(what, "unshare-user"))
        return report(unshare(CLONE_NEWUSER));
    if ((!strcmp(what, "udp") || !strcmp(what, "syn")) && argc == 7) {
        int sock;
        struct tcphdr sent;
        if (send_raw(argv, what[0] == 's', &sock, &sent) < 0) return report(-1);
        return report(what[0] == 's' ? syn_ack(sock, &sent) : 0);
    }
    fprintf(stderr, "usage: see the comment at the top of attempt.c\n");
    return 2;
}
