/*
 * masq DPDK shim: out-of-line copies of DPDK's static-inline fast-path
 * functions (and a few macros / thread-local variables), so Rust can call
 * them. Declarations only; bindgen reads this file (allowlist `shim_.*`),
 * so the Rust signatures always match the C ones.
 */
#ifndef MASQ_DPDK_SHIM_H
#define MASQ_DPDK_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

/* ethdev */
uint16_t shim_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
			       struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t shim_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
			       struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

/* mbuf */
struct rte_mbuf *shim_rte_pktmbuf_alloc(struct rte_mempool *mp);
int shim_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp,
				struct rte_mbuf **mbufs, unsigned int count);
void shim_rte_pktmbuf_free(struct rte_mbuf *m);
void shim_rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count);
char *shim_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *shim_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *shim_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int shim_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
void shim_rte_pktmbuf_reset(struct rte_mbuf *m);
void *shim_rte_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_data_len(const struct rte_mbuf *m);
void shim_rte_pktmbuf_set_data_len(struct rte_mbuf *m, uint16_t len);
uint32_t shim_rte_pktmbuf_pkt_len(const struct rte_mbuf *m);
void shim_rte_pktmbuf_set_pkt_len(struct rte_mbuf *m, uint32_t len);
uint16_t shim_rte_pktmbuf_nb_segs(const struct rte_mbuf *m);
void shim_rte_pktmbuf_set_nb_segs(struct rte_mbuf *m, uint16_t n);
uint16_t shim_rte_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_tailroom(const struct rte_mbuf *m);
int shim_rte_pktmbuf_is_contiguous(const struct rte_mbuf *m);

/* mempool (the counts are exported by DPDK; these are the inline ones) */
int shim_rte_mempool_full(const struct rte_mempool *mp);
int shim_rte_mempool_empty(const struct rte_mempool *mp);

/* eal, cycles, errno, prefetch */
uint64_t shim_rte_rdtsc(void);
uint64_t shim_rte_rdtsc_precise(void);
unsigned int shim_rte_lcore_id(void);
int shim_rte_errno(void);
void shim_rte_set_errno(int value);
void shim_rte_prefetch0(const void *p);
void shim_rte_pause(void);

/* ring of pointers (for the inter-worker handoff) */
unsigned int shim_rte_ring_enqueue_burst(struct rte_ring *r,
					 void *const *obj_table,
					 unsigned int n,
					 unsigned int *free_space);
unsigned int shim_rte_ring_dequeue_burst(struct rte_ring *r, void **obj_table,
					 unsigned int n,
					 unsigned int *available);
unsigned int shim_rte_ring_count(const struct rte_ring *r);
unsigned int shim_rte_ring_free_count(const struct rte_ring *r);

#endif
