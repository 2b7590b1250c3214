/* Test helper: makes and uses POSIX IPC objects the way programs do (glibc
 * sem_open, mq_open, mmap), prints "ready" and then serves stdin:
 * each line is echoed back (the test makes it run), EOF ends it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char *what) { fprintf(stderr, "posixhelper: %s: %s\n", what, strerror(errno)); exit(2); }

int main(int argc, char **argv) {
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *op = argv[i], *arg = argv[i + 1];
		if (!strcmp(op, "sem")) { /* sem_open(arg, O_CREAT) */
			if (sem_open(arg, O_CREAT, 0600, 0) == SEM_FAILED) die("sem_open");
		} else if (!strcmp(op, "mq") || !strcmp(op, "mqsend") || !strcmp(op, "mqnotify")) {
			struct mq_attr a = {.mq_maxmsg = 4, .mq_msgsize = 16};
			mqd_t q = mq_open(arg, O_CREAT | O_RDWR, 0600, &a);
			if (q == (mqd_t)-1) die("mq_open");
			if (!strcmp(op, "mqsend") && mq_send(q, "hello", 5, 0)) die("mq_send");
			if (!strcmp(op, "mqnotify")) {
				struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1};
				signal(SIGUSR1, SIG_IGN);
				if (mq_notify(q, &ev)) die("mq_notify");
			}
		} else if (!strcmp(op, "map") || !strcmp(op, "mapunlink")) { /* map arg, close the fd */
			int fd = open(arg, O_RDWR);
			if (fd < 0) die("open");
			if (mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED) die("mmap");
			close(fd);
			if (!strcmp(op, "mapunlink") && unlink(arg)) die("unlink");
		} else if (!strcmp(op, "shm")) { /* shm_open as glibc does it */
			int fd = shm_open(arg, O_CREAT | O_RDWR, 0600);
			if (fd < 0 || ftruncate(fd, 4096)) die("shm_open");
		} else {
			fprintf(stderr, "posixhelper: unknown op %s\n", op);
			return 2;
		}
	}
	printf("ready\n");
	fflush(stdout);
	char line[256];
	while (fgets(line, sizeof line, stdin)) {
		fputs(line, stdout);
		fflush(stdout);
	}
	return 0;
}
