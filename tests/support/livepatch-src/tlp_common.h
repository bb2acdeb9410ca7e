/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by the transactional-livepatch test livepatches.
 *
 * The patched /proc handlers must print the REAL text plus a marker, never a
 * fixed string: dracut's initrd re-reads /proc/cmdline and would lose root=.
 * The real text lives in non-exported symbols (saved_command_line,
 * linux_proc_banner) and kallsyms_lookup_name() is not exported either, so
 * the module reads the file once at load time, before its patch is enabled.
 * Both texts are fixed after boot, so this copy stays exact.
 * Needs /proc mounted in the loading task's root (always true on a running
 * system; a chroot without /proc makes the load fail with -ENOENT).
 */
#ifndef TLP_COMMON_H
#define TLP_COMMON_H

#include <linux/err.h>
#include <linux/fs.h>
#include <linux/string.h>

#define TLP_TEXT_MAX 4096

/* Whole file into buf, NUL-terminated, trailing newlines dropped. */
static int __init tlp_read_proc_text(const char *path, char *buf, size_t size)
{
	struct file *f;
	loff_t pos = 0;
	size_t total = 0;
	ssize_t n;

	f = filp_open(path, O_RDONLY, 0);
	if (IS_ERR(f))
		return PTR_ERR(f);
	while (total < size - 1) {
		n = kernel_read(f, buf + total, size - 1 - total, &pos);
		if (n < 0) {
			filp_close(f, NULL);
			return n;
		}
		if (n == 0)
			break;
		total += n;
	}
	filp_close(f, NULL);
	buf[total] = '\0';
	while (total > 0 && buf[total - 1] == '\n')
		buf[--total] = '\0';
	return 0;
}

/*
 * Remove " tlp_marker=..." words that another test livepatch, active while
 * this one loads, added to the text; everything else stays byte for byte.
 */
static void __init tlp_strip_markers(char *s)
{
	char *word = s, *from, *to;

	while ((word = strstr(word, "tlp_marker=")) != NULL) {
		if (word != s && word[-1] != ' ') {
			word++;		/* "xtlp_marker=": not a word of ours */
			continue;
		}
		to = word + strcspn(word, " ");
		from = word;
		if (word != s)
			from--;		/* drop the space before it... */
		else if (*to == ' ')
			to++;		/* ...or, at the start, the one after */
		memmove(from, to, strlen(to) + 1);
		word = from;
	}
}

#endif
