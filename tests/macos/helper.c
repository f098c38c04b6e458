/*
 * A tiny "undisclosed helper web server" for tests/macos/e2e.sh: the shape
 * of Zoom's 2019 ZoomOpener. Listens on 127.0.0.1:<port>, answers every
 * request with `Access-Control-Allow-Origin: *` and, for GET / and
 * GET /launch..., a 2x1 GIF (the status trick ZoomOpener used to get an
 * answer past CORS) -- what tests/src/bin/rogue-helper.rs does with
 * `--cors star --image` on Linux.
 *
 *   cc -O2 -o helper tests/macos/helper.c && ./helper 19555
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const unsigned char GIF[] = {
	'G', 'I', 'F', '8', '9', 'a', 2, 0, 1, 0, 0x80, 0x00, 0x00,
	0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00,
	0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0,
	0x02, 0x02, 0x44, 0x01, 0x00, 0x3B};

static void answer(int c)
{
	char req[4096];
	ssize_t n = read(c, req, sizeof(req) - 1);
	char head[512];
	int gif;
	if (n <= 0)
		return;
	req[n] = 0;
	gif = strncmp(req, "GET / ", 6) == 0 || strncmp(req, "GET /launch", 11) == 0;
	snprintf(head, sizeof(head),
		 "HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\n"
		 "Content-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
		 gif ? "image/gif" : "text/plain", gif ? sizeof(GIF) : (size_t)3);
	if (write(c, head, strlen(head)) < 0)
		return;
	if (gif)
		(void)write(c, GIF, sizeof(GIF));
	else
		(void)write(c, "ok\n", 3);
}

int main(int argc, char **argv)
{
	struct sockaddr_in a;
	int one = 1;
	int s;
	if (argc != 2) {
		fprintf(stderr, "usage: %s PORT\n", argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0) {
		perror("socket");
		return 1;
	}
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((unsigned short)atoi(argv[1]));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 16) < 0) {
		perror("bind/listen");
		return 1;
	}
	for (;;) {
		int c = accept(s, NULL, NULL);
		if (c < 0)
			continue;
		answer(c);
		close(c);
	}
}
