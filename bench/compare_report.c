/*
 * `compare`: the report. A markdown table (stdout and DIR/results.md), DIR/results.json (an
 * array, one object per measurement) and, when gnuplot is installed, DIR/throughput.{svg,png}
 * (records/s per engine, bar charts) and DIR/latency.{svg,png} (latency percentiles per engine),
 * each stating the machine, the engines' versions and the settings. DIR/plot.gp and the .dat
 * files it reads stay next to the figures, so they can be redrawn.
 */
#include "compare.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static const char *const engines[CMP_ENGINES_MAX] = {"sluice", "redis", "nats"};

int cmp_report_add(struct cmp_report *rep, const struct cmp_row *row)
{
	if (rep->nrows == rep->cap) {
		size_t cap = rep->cap ? rep->cap * 2 : 64;
		struct cmp_row *rows = realloc(rep->rows, cap * sizeof(*rows));
		if (!rows)
			return cmp_fail(NULL, "out of memory");
		rep->rows = rows;
		rep->cap = cap;
	}
	rep->rows[rep->nrows++] = *row;
	return 0;
}

static const char *dur(bool fsync)
{
	return fsync ? "fsync" : "async";
}

static bool same_config(const struct cmp_row *a, const struct cmp_row *b)
{
	return a->workload == b->workload && a->size == b->size && a->fsync == b->fsync &&
	       a->connections == b->connections && a->shards == b->shards;
}

static const struct cmp_row *find(const struct cmp_report *rep, const struct cmp_row *like,
				  const char *engine)
{
	for (size_t i = 0; i < rep->nrows; i++)
		if (same_config(&rep->rows[i], like) && strcmp(rep->rows[i].engine, engine) == 0)
			return &rep->rows[i];
	return NULL;
}

/* A peer's row for the summary line of `like`: a sluice-only workload is set against the
 * peers' nearest one (consume_handler against consume, e2e_handler against e2e). */
static const struct cmp_row *find_peer(const struct cmp_report *rep, const struct cmp_row *like,
				       const char *engine)
{
	struct cmp_row peer_like = *like;
	peer_like.workload = cmp_workload_peer(like->workload);
	return peer_like.workload == CMP_WORKLOADS ? NULL : find(rep, &peer_like, engine);
}

static bool is_latency(enum cmp_workload w)
{
	return w == CMP_PRODUCE_LATENCY || w == CMP_E2E || w == CMP_E2E_HANDLER;
}

/* Whether row i is the first of its configuration (one summary line per configuration). */
static bool first_of_config(const struct cmp_report *rep, size_t i)
{
	for (size_t k = 0; k < i; k++)
		if (same_config(&rep->rows[k], &rep->rows[i]))
			return false;
	return true;
}

static void fmt_num(double v, char *out, size_t len)
{
	if (v >= 1e6)
		snprintf(out, len, "%.2f M", v / 1e6);
	else if (v >= 1e3)
		snprintf(out, len, "%.1f k", v / 1e3);
	else
		snprintf(out, len, "%.0f", v);
}

static void fmt_us(double us, char *out, size_t len)
{
	if (us >= 10000)
		snprintf(out, len, "%.1f ms", us / 1000);
	else if (us >= 1000)
		snprintf(out, len, "%.2f ms", us / 1000);
	else
		snprintf(out, len, "%.0f µs", us);
}

static void header(const struct cmp_report *rep, FILE *f, const char *prefix)
{
	fprintf(f, "%s**Date:** %s  \n", prefix, rep->date);
	fprintf(f, "%s**Machine:** %s  \n", prefix, rep->machine);
	fprintf(f, "%s**Versions:** %s  \n", prefix, rep->versions);
	fprintf(f, "%s**Command:** `%s`\n\n", prefix, rep->command);
	fprintf(f, "Settings: %s\n\n", rep->settings);
	if (rep->notes[0]) {
		fprintf(f, "**Caveats:**\n\n");
		const char *p = rep->notes;
		while (*p) {
			size_t n = strcspn(p, "\n");
			fprintf(f, "- %.*s\n", (int)n, p);
			p += n;
			if (*p)
				p++;
		}
		fputc('\n', f);
	}
}

/* Samples in buckets [from, to) of a row's fdatasync histogram. */
static uint64_t fsyncs_in(const struct cmp_row *w, size_t from, size_t to)
{
	uint64_t n = 0;
	for (size_t b = from; b < to; b++)
		n += w->fsyncs[b];
	return n;
}

/* The bucket whose upper bound is ns (the first bound at or above it). */
static size_t bucket_of(uint64_t ns)
{
	size_t b = 0;
	while (b < SL_LATENCY_BOUNDS && sl_latency_bounds_ns[b] < ns)
		b++;
	return b;
}
#define B_1MS bucket_of(1000000)
#define B_2_5MS bucket_of(2500000)
#define B_10MS bucket_of(10000000)

static void fsyncs_slowest(const struct cmp_row *w, char *out, size_t len)
{
	size_t top = CMP_FSYNC_BUCKETS;
	while (top > 0 && !w->fsyncs[top - 1])
		top--;
	if (top == 0)
		snprintf(out, len, "—");
	else if (top == CMP_FSYNC_BUCKETS)
		snprintf(out, len, "> %g s",
			 (double)sl_latency_bounds_ns[SL_LATENCY_BOUNDS - 1] / 1e9);
	else
		snprintf(out, len, "≤ %g ms", (double)sl_latency_bounds_ns[top - 1] / 1e6);
}

static double pct(uint64_t part, uint64_t all)
{
	return all ? 100.0 * (double)part / (double)all : 0;
}

/* What the summary and the table say of a row's fdatasyncs. */
struct fsync_shares {
	uint64_t n;
	double le_1ms, gt_2_5ms, gt_10ms; /* percent of n */
	char slowest[32];
};

static void fsync_shares(const struct cmp_row *w, struct fsync_shares *out)
{
	out->n = fsyncs_in(w, 0, CMP_FSYNC_BUCKETS);
	out->le_1ms = pct(fsyncs_in(w, 0, B_1MS + 1), out->n);
	out->gt_2_5ms = pct(fsyncs_in(w, B_2_5MS + 1, CMP_FSYNC_BUCKETS), out->n);
	out->gt_10ms = pct(fsyncs_in(w, B_10MS + 1, CMP_FSYNC_BUCKETS), out->n);
	fsyncs_slowest(w, out->slowest, sizeof(out->slowest));
}

void cmp_fsyncs_summary(const struct cmp_row *w, char *out, size_t len)
{
	struct fsync_shares fs;
	fsync_shares(w, &fs);
	snprintf(out, len,
		 "%llu fdatasyncs: %.1f%% ≤ 1 ms, %.2f%% > 2.5 ms, %.3f%% > 10 ms, slowest %s",
		 (unsigned long long)fs.n, fs.le_1ms, fs.gt_2_5ms, fs.gt_10ms, fs.slowest);
}

/* sluice's own fdatasyncs in its paced fsync rows: what the tail of those rows waited for. */
static void fsyncs_table(const struct cmp_report *rep, FILE *f)
{
	bool any = false;
	for (size_t i = 0; i < rep->nrows && !any; i++)
		any = rep->rows[i].has_fsyncs;
	if (!any)
		return;
	fprintf(f,
		"### sluice's fdatasyncs in the paced fsync rows\n\n"
		"Read from sluiced's `/metrics` (`sluice_fsync_duration_seconds`) before and "
		"after each of its slices. Under `--fsync group` a request is answered after the "
		"fdatasync of every shard it wrote to, so slow ones set the tail of these rows. "
		"The peers do not report theirs.\n\n");
	fprintf(f, "| workload | record B | conns | fdatasyncs | ≤ 1 ms | > 2.5 ms | > 10 ms | "
		   "slowest | sluice p99 |\n");
	fprintf(f, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	for (size_t i = 0; i < rep->nrows; i++) {
		const struct cmp_row *w = &rep->rows[i];
		if (!w->has_fsyncs)
			continue;
		struct fsync_shares fs;
		fsync_shares(w, &fs);
		char p99[32];
		fmt_us(w->p99_us, p99, sizeof(p99));
		fprintf(f, "| %s | %u | %u | %llu | %.1f%% | %.2f%% | %.3f%% | %s | %s |\n",
			cmp_workload_name(w->workload), w->size, w->connections,
			(unsigned long long)fs.n, fs.le_1ms, fs.gt_2_5ms, fs.gt_10ms, fs.slowest,
			p99);
	}
	fputc('\n', f);
}

void cmp_report_markdown(const struct cmp_report *rep, FILE *f)
{
	fprintf(f, "## sluice-bench compare\n\n");
	header(rep, f, "");
	fprintf(
	    f, "### Summary: sluice against the best peer\n\n"
	       "Throughput rows (produce, consume): records/s, ratio = sluice / best peer. "
	       "Latency rows (produce_latency: send -> ack; e2e: due -> the reader has it), at the "
	       "same offered rate for every engine: p99, ratio = best peer p99 / sluice p99. "
	       "Ratio > 1: sluice is ahead. sluice alone: consume_handler (a plugin consumer, "
	       "shown against the peers' consume), e2e_handler (due -> the plugin handler has "
	       "it, against the peers' e2e), firehose (archived to file://, zstd 3) and replay "
	       "(`sluice replay` into a new stream).\n\n");
	fprintf(f, "| workload | durability | record B | conns | metric | sluice | redis | nats | "
		   "ratio |\n");
	fprintf(f, "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |\n");
	for (size_t i = 0; i < rep->nrows; i++) {
		const struct cmp_row *w = &rep->rows[i];
		if (!first_of_config(rep, i))
			continue;
		bool lat = is_latency(w->workload);
		fprintf(f, "| %s | %s | %u | %u | %s |", cmp_workload_name(w->workload),
			dur(w->fsync), w->size, w->connections, lat ? "p99" : "rec/s");
		double sl = NAN, best = NAN;
		for (int e = 0; e < CMP_ENGINES_MAX; e++) {
			const struct cmp_row *r =
			    e == 0 ? find(rep, w, engines[e]) : find_peer(rep, w, engines[e]);
			char s[32] = "—";
			if (r) {
				double v = lat ? r->p99_us : r->records_per_sec;
				if (lat)
					fmt_us(v, s, sizeof(s));
				else
					fmt_num(v, s, sizeof(s));
				if (e == 0)
					sl = v;
				else if (isnan(best) || (lat ? v < best : v > best))
					best = v;
			}
			fprintf(f, " %s |", s);
		}
		if (isnan(sl) || isnan(best) || sl <= 0 || best <= 0)
			fprintf(f, " — |\n");
		else
			fprintf(f, " %.2fx |\n", lat ? best / sl : sl / best);
	}
	fputc('\n', f);
	fsyncs_table(rep, f);
	fprintf(f, "### All measurements\n\n"
		   "produce rows' latencies are at saturation (flat-out producers: mostly queueing "
		   "in the client); rate = offered records/s of paced rows.\n\n");
	fprintf(f, "| workload | durability | record B | conns | shards | engine | records | "
		   "rate | rec/s | MB/s | p50 | p99 | p99.9 |\n");
	fprintf(f, "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | "
		   "---: | ---: |\n");
	for (size_t i = 0; i < rep->nrows; i++) {
		const struct cmp_row *w = &rep->rows[i];
		char rps[32], rate[32] = "—", p50[32] = "—", p99[32] = "—", p999[32] = "—";
		fmt_num(w->records_per_sec, rps, sizeof(rps));
		if (w->rate > 0)
			fmt_num(w->rate, rate, sizeof(rate));
		if (w->has_lat) {
			fmt_us(w->p50_us, p50, sizeof(p50));
			fmt_us(w->p99_us, p99, sizeof(p99));
			fmt_us(w->p999_us, p999, sizeof(p999));
		}
		fprintf(
		    f, "| %s | %s | %u | %u | %u | %s | %llu%s | %s | %s | %.1f | %s | %s | %s |\n",
		    cmp_workload_name(w->workload), dur(w->fsync), w->size, w->connections,
		    w->shards, w->engine, (unsigned long long)w->records,
		    w->time_bound ? " (time bound)" : "", rate, rps, w->mb_per_sec, p50, p99, p999);
	}
	fputc('\n', f);
}

static void json_num(FILE *f, const char *key, double v, bool valid)
{
	if (valid && isfinite(v))
		fprintf(f, ", \"%s\": %.6g", key, v);
	else
		fprintf(f, ", \"%s\": null", key);
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static int write_json(const struct cmp_report *rep, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return cmp_fail(NULL, "cannot write %s: %s", path, strerror(errno));
	fputs("[\n", f);
	for (size_t i = 0; i < rep->nrows; i++) {
		const struct cmp_row *w = &rep->rows[i];
		fprintf(f,
			"  {\"engine\": \"%s\", \"workload\": \"%s\", \"record_bytes\": %u, "
			"\"durability\": \"%s\", \"connections\": %u, \"shards\": %u, \"records\": "
			"%llu",
			w->engine, cmp_workload_name(w->workload), w->size, dur(w->fsync),
			w->connections, w->shards, (unsigned long long)w->records);
		json_num(f, "records_per_sec", w->records_per_sec, true);
		json_num(f, "mb_per_sec", w->mb_per_sec, true);
		json_num(f, "p50_us", w->p50_us, w->has_lat);
		json_num(f, "p99_us", w->p99_us, w->has_lat);
		json_num(f, "p999_us", w->p999_us, w->has_lat);
		json_num(f, "p90_us", w->p90_us, w->has_lat);
		json_num(f, "p9999_us", w->p9999_us, w->has_lat);
		json_num(f, "max_us", w->max_us, w->has_lat);
		json_num(f, "offered_rate", w->rate, w->rate > 0);
		json_num(f, "seconds", w->seconds, true);
		fprintf(f, ", \"time_bound\": %s", w->time_bound ? "true" : "false");
		fprintf(f, ", \"machine\": ");
		json_str(f, rep->machine);
		fprintf(f, ", \"versions\": ");
		json_str(f, rep->versions);
		fprintf(f, ", \"date\": ");
		json_str(f, rep->date);
		fprintf(f, "}%s\n", i + 1 < rep->nrows ? "," : "");
	}
	fputs("]\n", f);
	return fclose(f) == 0 ? 0 : cmp_fail(NULL, "cannot write %s", path);
}

static int write_md(const struct cmp_report *rep, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return cmp_fail(NULL, "cannot write %s: %s", path, strerror(errno));
	cmp_report_markdown(rep, f);
	fprintf(f, "![throughput](throughput.svg)\n\n![latency](latency.svg)\n");
	return fclose(f) == 0 ? 0 : cmp_fail(NULL, "cannot write %s", path);
}

/* ---- plots ---- */

/* A gnuplot double-quoted string. */
static void gp_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const char *p = s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fputc('\\', f);
		if (*p == '\n') {
			fputs("\\n", f);
			continue;
		}
		fputc(*p, f);
	}
	fputc('"', f);
}

struct config {
	uint32_t size, connections, shards;
	bool fsync;
};

/* The distinct (size, connections, durability) configurations, in run order. */
static size_t configs(const struct cmp_report *rep, struct config *out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < rep->nrows; i++) {
		const struct cmp_row *w = &rep->rows[i];
		size_t k = 0;
		while (k < n && !(out[k].size == w->size && out[k].connections == w->connections &&
				  out[k].fsync == w->fsync))
			k++;
		if (k == n && n < max)
			out[n++] = (struct config){w->size, w->connections, w->shards, w->fsync};
	}
	return n;
}

static const struct cmp_row *lookup(const struct cmp_report *rep, const struct config *c,
				    enum cmp_workload wl, const char *engine)
{
	struct cmp_row like = {.workload = wl,
			       .size = c->size,
			       .connections = c->connections,
			       .shards = c->shards,
			       .fsync = c->fsync};
	return find(rep, &like, engine);
}

static int write_plots(const struct cmp_report *rep, const char *dir)
{
	struct config cf[64];
	size_t ncf = configs(rep, cf, 64);
	char path[4200];
	/* throughput.dat: one block per workload, one line per configuration. */
	snprintf(path, sizeof(path), "%s/throughput.dat", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		return cmp_fail(NULL, "cannot write %s: %s", path, strerror(errno));
	static const enum cmp_workload tput[] = {CMP_PRODUCE, CMP_CONSUME};
	for (size_t w = 0; w < 2; w++) {
		fprintf(f, "# %s: config sluice redis nats (records/s; 0: not run)\n",
			cmp_workload_name(tput[w]));
		for (size_t c = 0; c < ncf; c++) {
			fprintf(f, "\"%uB %s c%u\"", cf[c].size, dur(cf[c].fsync),
				cf[c].connections);
			for (int e = 0; e < CMP_ENGINES_MAX; e++) {
				const struct cmp_row *r = lookup(rep, &cf[c], tput[w], engines[e]);
				fprintf(f, " %.6g", r ? r->records_per_sec : 0.0);
			}
			fputc('\n', f);
		}
		fputs("\n\n", f);
	}
	fclose(f);
	/* latency.dat: one block per (workload, configuration), one line per percentile. */
	snprintf(path, sizeof(path), "%s/latency.dat", dir);
	f = fopen(path, "w");
	if (!f)
		return cmp_fail(NULL, "cannot write %s: %s", path, strerror(errno));
	static const enum cmp_workload lat[] = {CMP_PRODUCE_LATENCY, CMP_E2E};
	static const char *const pct[] = {"p50", "p90", "p99", "p99.9", "p99.99"};
	char titles[128][96];
	double rates[128];
	size_t nblocks = 0;
	for (size_t w = 0; w < 2; w++) {
		for (size_t c = 0; c < ncf && nblocks < 128; c++) {
			const struct cmp_row *r[CMP_ENGINES_MAX];
			bool any = false;
			for (int e = 0; e < CMP_ENGINES_MAX; e++) {
				r[e] = lookup(rep, &cf[c], lat[w], engines[e]);
				any |= r[e] != NULL;
			}
			if (!any)
				continue;
			double rate = 0;
			fprintf(f, "# %s %uB %s c%u: percentile sluice redis nats (us)\n",
				cmp_workload_name(lat[w]), cf[c].size, dur(cf[c].fsync),
				cf[c].connections);
			for (int q = 0; q < 5; q++) {
				fprintf(f, "%s", pct[q]);
				for (int e = 0; e < CMP_ENGINES_MAX; e++) {
					double v = NAN;
					if (r[e]) {
						const double all[] = {r[e]->p50_us, r[e]->p90_us,
								      r[e]->p99_us, r[e]->p999_us,
								      r[e]->p9999_us};
						v = all[q];
						rate = r[e]->rate;
					}
					if (isnan(v))
						fprintf(f, " NaN");
					else
						fprintf(f, " %.6g", v < 1 ? 1 : v);
				}
				fputc('\n', f);
			}
			fputs("\n\n", f);
			snprintf(titles[nblocks], sizeof(titles[0]), "%s, %u B, %s, %u conn",
				 lat[w] == CMP_E2E ? "e2e" : "send->ack", cf[c].size,
				 dur(cf[c].fsync), cf[c].connections);
			rates[nblocks] = rate;
			nblocks++;
		}
	}
	fclose(f);

	snprintf(path, sizeof(path), "%s/plot.gp", dir);
	f = fopen(path, "w");
	if (!f)
		return cmp_fail(NULL, "cannot write %s: %s", path, strerror(errno));
	char title[4096];
	snprintf(title, sizeof(title), "sluice-bench compare, %s; %s\n%s\n%s", rep->date,
		 rep->machine, rep->versions, rep->brief);
	int cols = nblocks < 4 ? (int)nblocks : 4;
	if (cols < 1)
		cols = 1;
	int rows = (int)((nblocks + (size_t)cols - 1) / (size_t)cols);
	if (rows < 1)
		rows = 1;
	fprintf(f, "# Drawn by sluice-bench compare; redraw with: cd %s && gnuplot plot.gp\n", dir);
	fprintf(f, "set encoding utf8\n");
	fprintf(f, "engines = \"sluice redis nats\"\n");
	fprintf(f, "set style line 1 lc rgb '#1f77b4' lw 2 pt 7\n"
		   "set style line 2 lc rgb '#d62728' lw 2 pt 5\n"
		   "set style line 3 lc rgb '#2ca02c' lw 2 pt 9\n");
	for (int term = 0; term < 2; term++) {
		const char *ext = term == 0 ? "svg" : "png";
		const char *tset = term == 0 ? "svg dynamic noenhanced font 'sans,10'"
					     : "pngcairo noenhanced font 'sans,9'";
		/* throughput */
		fprintf(f, "\nset terminal %s size %d,%d\n", tset, 1400, 640);
		fprintf(f, "set output 'throughput.%s'\n", ext);
		fprintf(f, "set multiplot layout 1,2 title ");
		gp_str(f, title);
		fprintf(f, " font ',9' margins 0.06,0.98,0.14,%.3f spacing 0.06,0\n",
			1.0 - 110.0 / 640);
		fprintf(f, "set style data histograms\n"
			   "set style histogram clustered gap 1\n"
			   "set style fill solid 0.85 border -1\nset boxwidth 0.9\n"
			   "set logscale y\nset yrange [1000:*]\nset format y '%%.0s%%c'\n"
			   "set grid ytics\nset xtics rotate by -35 scale 0\n"
			   "set key top right\nset ylabel 'records/s (log)'\n");
		for (int w = 0; w < 2; w++) {
			fprintf(f, "set title '%s (records/s, %u shards)'\n",
				w == 0 ? "produce, flat out" : "consume (read back)",
				ncf ? cf[0].shards : 0);
			fprintf(f,
				"plot 'throughput.dat' index %d using ($2>0?$2:NaN):xtic(1) title "
				"'sluice' lc rgb '#1f77b4', '' index %d using ($3>0?$3:NaN) title "
				"'redis' lc rgb '#d62728', '' index %d using ($4>0?$4:NaN) title "
				"'nats' lc rgb '#2ca02c'\n",
				w, w, w);
		}
		fprintf(f, "unset multiplot\n");
		/* latency */
		int height = 300 * rows + 150;
		fprintf(f, "\nset terminal %s size %d,%d\n", tset, 330 * cols + 60, height);
		fprintf(f, "set output 'latency.%s'\n", ext);
		fprintf(f, "set multiplot layout %d,%d title ", rows, cols);
		gp_str(f, title);
		fprintf(f, " font ',9' margins 0.07,0.98,%.3f,%.3f spacing 0.07,%.3f\n",
			40.0 / height, 1.0 - 150.0 / height, 80.0 / height);
		fprintf(f, "unset style\nset style data linespoints\n"
			   "set logscale y\nset yrange [*:*]\nset format y '%%g'\n"
			   "set ylabel 'latency, us (log)'\nset xtics rotate by 0 scale 1\n"
			   "set key top left font ',8'\nset grid\n");
		for (size_t b = 0; b < nblocks; b++) {
			char t[256];
			char r[32];
			fmt_num(rates[b], r, sizeof(r));
			snprintf(t, sizeof(t), "%.95s\\n@ %.31s rec/s offered", titles[b], r);
			fprintf(f, "set title \"%s\" font ',9'\n", t);
			fprintf(
			    f,
			    "plot 'latency.dat' index %zu using 0:2:xtic(1) title 'sluice' ls 1, "
			    "'' index %zu using 0:3 title 'redis' ls 2, '' index %zu using 0:4 "
			    "title 'nats' ls 3\n",
			    b, b, b);
		}
		fprintf(f, "unset multiplot\n");
	}
	fclose(f);
	if (nblocks == 0 && ncf == 0)
		return 0;
	char cmd[4300];
	snprintf(cmd, sizeof(cmd), "cd '%s' && gnuplot plot.gp 2>gnuplot.log", dir);
	int st = system(cmd);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return cmp_fail(NULL, "gnuplot failed (see %s/gnuplot.log)", dir);
	return 0;
}

static bool have_gnuplot(void)
{
	int st = system("gnuplot --version >/dev/null 2>&1");
	return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

int cmp_report_write(const struct cmp_report *rep, const char *dir)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/results.md", dir);
	if (write_md(rep, path) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/results.json", dir);
	if (write_json(rep, path) < 0)
		return -1;
	if (getenv("SLUICE_BENCH_NO_PLOTS"))
		return 0;
	if (!have_gnuplot()) {
		cmp_progress("gnuplot not found (apt-get install gnuplot-nox): no plots");
		return 0;
	}
	return write_plots(rep, dir);
}
