// A QEMU TCG plugin that counts the Cortex-M4 timing events of the instructions a guest
// executes, for benchmarks/mlperf_tiny.py's cycle model (effkeras/bench/estimate.py has the
// cycles each event costs and where those come from).
//
// Build (benchmarks/mlperf_cycles.py does it, into build/; never committed as a binary):
//     gcc -O2 -shared -fPIC -o m4_cycles.so m4_cycles_plugin.c
// Run:
//     qemu-system-arm -M mps2-an386 -icount shift=0 -kernel fw.elf
//         -plugin ./m4_cycles.so,out=events.txt,mark=0x40000004,min=200,flash=0x0:0x400000
//
// What it counts. Every executed instruction is classified once, when QEMU translates it,
// from its Capstone disassembly (qemu_plugin_insn_disas): data processing, multiply
// accumulate, divide, single loads and stores (and whether the Cortex-M4 pipelines one after
// the load before it, and whether its address depends on the result of the data-processing
// instruction just before it), LDRD/STRD, LDM/STM/PUSH/POP and the registers they move,
// branches, VFP classes. Those static counts are added by inline ops on every execution of
// the instruction (exact even when a block is left early). Dynamic events: taken and not-taken
// branches (the next executed block starts at the fall-through address or not), and the
// flash model's misses: loads from the flash range go through a small 4-way set-associative LRU
// data cache, instruction fetches of every block through an instruction cache; a miss that is
// the 64-bit line right after the previous fetch is counted as prefetched.
//
// Output (the file given by out=, or stdout): one "efkcyc_names ..." line, then one
// "efkcyc v0 v1 ..." line with the event counts since the previous line each time the guest
// reads the marker address (mark=, TIMER0 VALUE of the mps2-an386: the op profiler and the
// sketch's micros() read it) after at least min= instructions, and "efkcyc_total ..." at exit.
//
// The declarations below are our own, of the documented QEMU plugin C API (version 1, as
// QEMU 7.2 provides it: docs/devel/tcg-plugins.rst); no QEMU header is needed.
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- the QEMU plugin API this plugin uses -------------------------------------------------
typedef uint64_t qemu_plugin_id_t;
typedef uint32_t qemu_plugin_meminfo_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef struct {
  const char* target_name;
  struct {
    int min;
    int cur;
  } version;
  bool system_emulation;
  union {
    struct {
      int smp_vcpus;
      int max_vcpus;
    } system;
  };
} efk_qemu_info_t;
enum { EFK_CB_NO_REGS = 0 };
// QEMU_PLUGIN_MEM_RW. Registered for reads alone (1), QEMU 7.2 here called back on stores only;
// with both, the callback keeps the reads (qemu_plugin_mem_is_store).
enum { EFK_MEM_RW = 3 };
enum { EFK_INLINE_ADD_U64 = 0 };
typedef void (*efk_tb_trans_cb)(qemu_plugin_id_t, struct qemu_plugin_tb*);
typedef void (*efk_udata_cb)(unsigned int vcpu, void* userdata);
typedef void (*efk_mem_cb)(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr,
                           void* userdata);
typedef void (*efk_atexit_cb)(qemu_plugin_id_t, void* userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, efk_tb_trans_cb cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb* tb, efk_udata_cb cb, int flags,
                                          void* userdata);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn* insn, int op, void* ptr,
                                                uint64_t imm);
void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn* insn, efk_mem_cb cb, int flags,
                                      int rw, void* userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, efk_atexit_cb cb, void* userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb* tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb* tb);
struct qemu_plugin_insn* qemu_plugin_tb_get_insn(const struct qemu_plugin_tb* tb, size_t idx);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn* insn);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn* insn);
char* qemu_plugin_insn_disas(const struct qemu_plugin_insn* insn);
bool qemu_plugin_mem_is_store(qemu_plugin_meminfo_t info);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

// ---- events ---------------------------------------------------------------------------------
enum {
  EV_INSNS,      // instructions executed
  EV_DP,         // data processing, 1-cycle multiplies and MACs (MUL, SMLAD, SMLAL...), NOP
  EV_MLA,        // MLA, MLS
  EV_DIV,        // SDIV, UDIV
  EV_LD,         // single load (LDR, LDRB, LDRH, LDRSB, LDRSH, LDREX) not pipelined
  EV_LS_PIPE,    // single load or store right after a single load it can pipeline with
  EV_ST,         // single store with an immediate offset (or none)
  EV_ST_REG,     // single store with a register offset
  EV_LSD,        // LDRD, STRD
  EV_LSM,        // LDM, STM, PUSH, POP (the instructions)
  EV_LSM_REGS,   // ... and the registers they transfer
  EV_ADDR_DEP,   // load/store whose address uses the result of the data-processing insn before it
  EV_BR,         // branch instructions (B, BL, BX, BLX, CBZ, CBNZ)
  EV_TB,         // TBB, TBH
  EV_TAKEN,      // taken branches and other control transfers (POP {pc}, LDR pc, ...)
  EV_NOT_TAKEN,  // conditional branches that fell through
  EV_VFP1,       // 1-cycle VFP: VADD, VSUB, VMUL, VCVT, VCMP, VMOV, VABS, VNEG, VMRS...
  EV_VFP3,       // VMLA, VMLS, VNMLA, VNMLS, VFMA, VFMS, VFNMA, VFNMS
  EV_VFP14,      // VDIV, VSQRT
  EV_VLDST,      // VLDR, VSTR
  EV_VLSM,       // VLDM, VSTM, VPUSH, VPOP (the instructions)
  EV_VLSM_REGS,  // ... and the registers they transfer
  EV_IT,         // IT (0 or 1 cycle: the M4 can fold it)
  EV_UNKNOWN,    // mnemonics not classified (costed as 1 cycle)
  EV_FLASH_LOADS,    // data loads from the flash range
  EV_FLASH_DMISS,    // ... that missed the data cache
  EV_FLASH_IFETCH,   // 64-bit instruction lines fetched from the flash range
  EV_FLASH_IMISS,    // ... that missed the instruction cache, not sequential
  EV_FLASH_IPREF,    // ... that missed it but were the line after the previous fetch
  EV_COUNT
};
static const char* kEventNames[EV_COUNT] = {
    "insns", "dp",       "mla",         "div",      "ld",          "ls_pipe",
    "st",    "st_reg",   "lsd",         "lsm",      "lsm_regs",    "addr_dep",
    "br",    "tb",       "taken",       "not_taken", "vfp1",       "vfp3",
    "vfp14", "vldst",    "vlsm",        "vlsm_regs", "it", "unknown",    "flash_loads",
    "flash_dmiss", "flash_ifetch", "flash_imiss", "flash_ipref"};

static uint64_t counts[EV_COUNT];
static uint64_t last_mark[EV_COUNT];
static uint64_t branch_execs;  // inline-incremented by every block-ending control transfer
static uint64_t seen_branch_execs;

static FILE* out;
static uint64_t mark_addr = 0x40000004u;
static uint64_t min_insns = 200;
static uint64_t flash_lo = 0x0, flash_hi = 0x400000;
static int dump;  // dump=1: print each translated instruction and its class to out

// ---- small 4-way set-associative LRU caches of 64-bit lines ---------------------------------
// The capacities are the STM32L4 ART accelerator's (1 KB instruction, 256 B data cache); the
// organisation is our assumption (estimate.py's docstring has the sources).
#define LINE_SHIFT 3
#define WAYS 4
typedef struct {
  int sets;
  uint64_t tag[64][WAYS];
  uint64_t age[64][WAYS];
  uint64_t clock;
} Cache;
static Cache icache = {.sets = 32};  // 32 x 4 lines of 8 B: 1 KB
static Cache dcache = {.sets = 8};   // 8 x 4 lines of 8 B: 256 B
static uint64_t last_iline = UINT64_MAX;

static bool cache_access(Cache* c, uint64_t line) {
  int s = (int)(line % (uint64_t)c->sets), victim = 0;
  c->clock++;
  for (int w = 0; w < WAYS; w++) {
    if (c->age[s][w] && c->tag[s][w] == line) {
      c->age[s][w] = c->clock;
      return true;
    }
    if (c->age[s][w] < c->age[s][victim]) victim = w;
  }
  c->tag[s][victim] = line;
  c->age[s][victim] = c->clock;
  return false;
}

// ---- disassembly parsing --------------------------------------------------------------------
static const char* kConds[] = {"eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc",
                               "hi", "ls", "ge", "lt", "gt", "le", "al", NULL};

static bool is_cond(const char* s) {
  for (int i = 0; kConds[i]; i++)
    if (strcmp(s, kConds[i]) == 0) return true;
  return false;
}

static bool in_list(const char* m, const char* const* list) {
  for (int i = 0; list[i]; i++)
    if (strcmp(m, list[i]) == 0) return true;
  return false;
}

static const char* const kBranch[] = {"b", "bl", "bx", "blx", "cbz", "cbnz", NULL};
static const char* const kTableBranch[] = {"tbb", "tbh", NULL};
static const char* const kLoad[] = {"ldr", "ldrb", "ldrh", "ldrsb", "ldrsh", "ldrex", "ldrexb",
                                    "ldrexh", "ldrt", "ldrbt", "ldrht", "ldrsbt", "ldrsht", NULL};
static const char* const kStore[] = {"str", "strb", "strh", "strex", "strexb", "strexh", "strt",
                                     "strbt", "strht", NULL};
static const char* const kLoadMulti[] = {"ldm", "ldmia", "ldmfd", "ldmdb", "ldmea", "pop", NULL};
static const char* const kStoreMulti[] = {"stm", "stmia", "stmea", "stmdb", "stmfd", "push", NULL};
static const char* const kLsd[] = {"ldrd", "strd", NULL};
static const char* const kMla[] = {"mla", "mls", NULL};
static const char* const kDiv[] = {"sdiv", "udiv", NULL};
static const char* const kVfp3[] = {"vmla", "vmls", "vnmla", "vnmls", "vfma", "vfms", "vfnma",
                                    "vfnms", NULL};
static const char* const kVfp14[] = {"vdiv", "vsqrt", NULL};
static const char* const kVldst[] = {"vldr", "vstr", NULL};
static const char* const kVlsm[] = {"vldm", "vldmia", "vldmdb", "vstm", "vstmia", "vstmdb",
                                    "vpush", "vpop", NULL};
// Everything else the M4 executes in one cycle (ARMv7E-M data processing, multiplies with 32-
// and 64-bit results, the DSP extension's SIMD and MAC instructions, barriers, hints).
static const char* const kDp[] = {
    "mov", "movs", "mvn", "add", "adc", "sub", "sbc", "rsb", "and", "orr", "orn", "eor", "bic",
    "cmp", "cmn", "tst", "teq", "lsl", "lsr", "asr", "ror", "rrx", "adr", "addw", "subw", "movw",
    "movt", "neg", "uxtb", "uxth", "sxtb", "sxth", "uxtab", "uxtah", "sxtab", "sxtah", "uxtb16",
    "sxtb16", "uxtab16", "sxtab16", "ubfx", "sbfx", "bfi", "bfc", "clz", "rbit", "rev", "rev16",
    "revsh", "ssat", "usat", "ssat16", "usat16", "qadd", "qsub", "qdadd", "qdsub", "sadd16",
    "ssub16", "sadd8", "ssub8", "uadd8", "usub8", "uadd16", "usub16", "qadd8", "qadd16", "qsub8",
    "qsub16", "uqadd8", "uqadd16", "uqsub8", "uqsub16", "shadd8", "shadd16", "shsub8", "shsub16",
    "uhadd8", "uhadd16", "uhsub8", "uhsub16", "qasx", "qsax", "sasx", "ssax", "uasx", "usax",
    "shasx", "shsax", "uhasx", "uhsax", "uqasx", "uqsax", "sel", "pkhbt", "pkhtb", "usad8",
    "usada8", "mul", "smull", "umull", "smlal", "umlal", "umaal", "smulbb", "smulbt", "smultb",
    "smultt", "smulwb", "smulwt", "smlabb", "smlabt", "smlatb", "smlatt", "smlawb", "smlawt",
    "smlalbb", "smlalbt", "smlaltb", "smlaltt", "smlad", "smladx", "smlsd", "smlsdx", "smlald",
    "smlaldx", "smlsld", "smlsldx", "smuad", "smuadx", "smusd", "smusdx", "smmul", "smmulr",
    "smmla", "smmlar", "smmls", "smmlsr", "nop", "yield", "wfe", "wfi", "sev", "dmb", "dsb",
    "isb", "cpsie", "cpsid", "mrs", "msr", "pld", "pli", "bkpt", "svc", "udf", "clrex",
    // VFP one-cycle operations
    "vadd", "vsub", "vmul", "vnmul", "vabs", "vneg", "vcmp", "vcmpe", "vcvt", "vcvtr", "vcvta",
    "vcvtb", "vcvtt", "vmov", "vmrs", "vmsr", NULL};

typedef struct {
  int ev;              // main event (EV_*)
  int regs;            // registers transferred (LSM/VLSM)
  bool is_load;        // single load (pipelining source)
  bool is_single_ls;   // single load or store (pipelining target)
  bool control;        // may end the block by changing the pc
  bool writes_reg;     // data processing with a destination register
  int dest;            // destination register number (-1: none)
  unsigned addr_regs;  // bit mask of registers in the address ([...])
} Insn;

static int reg_num(const char* s, const char** end) {
  static const struct {
    const char* name;
    int num;
  } kNames[] = {{"sb", 9}, {"sl", 10}, {"fp", 11}, {"ip", 12}, {"sp", 13}, {"lr", 14}, {"pc", 15}};
  if (s[0] == 'r' && s[1] >= '0' && s[1] <= '9') {
    int n = s[1] - '0';
    int len = 2;
    if (s[2] >= '0' && s[2] <= '9') {
      n = n * 10 + (s[2] - '0');
      len = 3;
    }
    if (end) *end = s + len;
    return n <= 15 ? n : -1;
  }
  for (size_t i = 0; i < sizeof(kNames) / sizeof(kNames[0]); i++)
    if (strncmp(s, kNames[i].name, 2) == 0) {
      if (end) *end = s + 2;
      return kNames[i].num;
    }
  return -1;
}

// Registers in a {...} list, with ranges ("r4-r7", "d8-d15").
static int count_list(const char* ops, bool* has_pc) {
  const char* p = strchr(ops, '{');
  int n = 0;
  if (!p) return 0;
  p++;
  while (*p && *p != '}') {
    while (*p == ' ' || *p == ',') p++;
    if (*p == '}' || !*p) break;
    char kind = *p;
    int a = atoi(p + 1), b = a;
    if (kind == 'r' || kind == 's' || kind == 'd') {
      const char* q = p + 1;
      while (*q >= '0' && *q <= '9') q++;
      if (*q == '-') b = atoi(q + 2);
      if (kind == 'r' || kind == 's' || kind == 'd') n += (b >= a ? b - a + 1 : 1);
    } else {
      if (strncmp(p, "pc", 2) == 0 && has_pc) *has_pc = true;
      n += 1;
    }
    while (*p && *p != ',' && *p != '}') p++;
  }
  return n;
}

static void parse_regs(const char* ops, Insn* in) {
  const char* e;
  in->dest = reg_num(ops, &e);
  const char* br = strchr(ops, '[');
  if (br) {
    const char* close = strchr(br, ']');
    for (const char* p = br + 1; *p && (!close || p < close); p++) {
      if (p[-1] == '[' || p[-1] == ' ' || p[-1] == ',') {
        int r = reg_num(p, NULL);
        if (r >= 0) in->addr_regs |= 1u << r;
      }
    }
  }
}

static bool has_reg_offset(const char* ops) {
  const char* br = strchr(ops, '[');
  if (!br) return false;
  const char* comma = strchr(br, ',');
  const char* close = strchr(br, ']');
  if (!comma || (close && comma > close)) return false;
  comma++;
  while (*comma == ' ') comma++;
  return reg_num(comma, NULL) >= 0;
}

static void classify(const char* disas, Insn* in) {
  char mn[32];
  int i = 0;
  memset(in, 0, sizeof(*in));
  in->dest = -1;
  while (disas[i] && disas[i] != ' ' && disas[i] != '\t' && i < 31) {
    mn[i] = disas[i];
    i++;
  }
  mn[i] = 0;
  const char* ops = disas + i;
  while (*ops == ' ' || *ops == '\t') ops++;
  char* dot = strchr(mn, '.');  // ".w", ".n", ".f32", ".s32"...
  if (dot) *dot = 0;
  // The base mnemonic: as is, or without a condition suffix, or without a flag-setting 's'.
  char base[32];
  strcpy(base, mn);
  size_t n = strlen(base);
  const char* const* sets[] = {kBranch, kTableBranch, kLoad, kStore, kLoadMulti, kStoreMulti,
                               kLsd, kMla, kDiv, kVfp3, kVfp14, kVldst, kVlsm, kDp, NULL};
  bool known = false;
  for (int pass = 0; pass < 4 && !known; pass++) {
    char cand[32];
    strcpy(cand, mn);
    size_t m = n;
    if ((pass & 1) && m > 2 && is_cond(cand + m - 2)) {
      cand[m - 2] = 0;
      m -= 2;
    } else if (pass & 1) {
      continue;
    }
    if ((pass & 2) && m > 1 && cand[m - 1] == 's') {
      cand[m - 1] = 0;
    } else if (pass & 2) {
      continue;
    }
    for (int s = 0; sets[s]; s++)
      if (in_list(cand, sets[s])) {
        strcpy(base, cand);
        known = true;
        break;
      }
  }
  if (!known && base[0] == 'i' && base[1] == 't' && strspn(base + 2, "te") == strlen(base + 2) &&
      strlen(base) <= 5) {
    in->ev = EV_IT;
    return;
  }
  if (!known) {
    in->ev = EV_UNKNOWN;
    return;
  }
  if (in_list(base, kBranch)) {
    in->ev = EV_BR;
    in->control = true;
  } else if (in_list(base, kTableBranch)) {
    in->ev = EV_TB;
    in->control = true;
  } else if (in_list(base, kLoad)) {
    parse_regs(ops, in);
    in->ev = EV_LD;
    in->is_load = in->is_single_ls = true;
    in->control = in->dest == 15;
  } else if (in_list(base, kStore)) {
    parse_regs(ops, in);
    in->ev = has_reg_offset(ops) ? EV_ST_REG : EV_ST;
    in->is_single_ls = true;
    in->dest = -1;
  } else if (in_list(base, kLsd)) {
    parse_regs(ops, in);
    in->ev = EV_LSD;
    in->dest = -1;
  } else if (in_list(base, kLoadMulti) || in_list(base, kStoreMulti)) {
    bool pc = false;
    in->ev = EV_LSM;
    in->regs = count_list(ops, &pc);
    in->control = pc && in_list(base, kLoadMulti);
  } else if (in_list(base, kMla)) {
    in->ev = EV_MLA;
    in->dest = reg_num(ops, NULL);
    in->writes_reg = true;
  } else if (in_list(base, kDiv)) {
    in->ev = EV_DIV;
    in->dest = reg_num(ops, NULL);
    in->writes_reg = true;
  } else if (in_list(base, kVfp3)) {
    in->ev = EV_VFP3;
  } else if (in_list(base, kVfp14)) {
    in->ev = EV_VFP14;
  } else if (in_list(base, kVldst)) {
    in->ev = EV_VLDST;
  } else if (in_list(base, kVlsm)) {
    in->ev = EV_VLSM;
    in->regs = count_list(ops, NULL);
  } else if (base[0] == 'v') {
    in->ev = EV_VFP1;
  } else {
    in->ev = EV_DP;
    if (base[0] != 'v' && strcmp(base, "cmp") && strcmp(base, "cmn") && strcmp(base, "tst") &&
        strcmp(base, "teq") && strncmp(base, "it", 2)) {
      in->dest = reg_num(ops, NULL);
      in->writes_reg = in->dest >= 0;
      in->control = in->dest == 15;
    }
  }
}

// ---- per block ------------------------------------------------------------------------------
typedef struct {
  uint64_t start, end;  // [start, end) of the block's code
  uint64_t fallthrough;
  bool ends_with_control;
} Block;

static Block* prev_block;

static void emit(const char* tag, const uint64_t* v) {
  FILE* f = out ? out : stdout;
  fputs(tag, f);
  for (int i = 0; i < EV_COUNT; i++) fprintf(f, " %llu", (unsigned long long)v[i]);
  fputc('\n', f);
  fflush(f);
}

static void block_exec(unsigned int vcpu, void* userdata) {
  (void)vcpu;
  Block* b = (Block*)userdata;
  if (prev_block && branch_execs != seen_branch_execs) {
    // The previous block's last instruction (a control transfer) executed.
    if (b->start == prev_block->fallthrough)
      counts[EV_NOT_TAKEN]++;
    else
      counts[EV_TAKEN]++;
  }
  seen_branch_execs = branch_execs;
  prev_block = b->ends_with_control ? b : NULL;
  if (b->start >= flash_lo && b->start < flash_hi) {
    for (uint64_t line = b->start >> LINE_SHIFT; line <= (b->end - 1) >> LINE_SHIFT; line++) {
      counts[EV_FLASH_IFETCH]++;
      if (!cache_access(&icache, line)) {
        if (line == last_iline + 1)
          counts[EV_FLASH_IPREF]++;
        else
          counts[EV_FLASH_IMISS]++;
      }
      last_iline = line;
    }
  }
}

static void mem_read(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void* ud) {
  (void)vcpu;
  (void)ud;
  if (qemu_plugin_mem_is_store(info)) return;
  if (vaddr == mark_addr) {
    uint64_t delta[EV_COUNT];
    for (int i = 0; i < EV_COUNT; i++) delta[i] = counts[i] - last_mark[i];
    if (delta[EV_INSNS] >= min_insns) emit("efkcyc", delta);
    memcpy(last_mark, counts, sizeof(counts));
    return;
  }
  if (vaddr >= flash_lo && vaddr < flash_hi) {
    counts[EV_FLASH_LOADS]++;
    if (!cache_access(&dcache, vaddr >> LINE_SHIFT)) counts[EV_FLASH_DMISS]++;
  }
}

static void block_trans(qemu_plugin_id_t id, struct qemu_plugin_tb* tb) {
  (void)id;
  size_t n = qemu_plugin_tb_n_insns(tb);
  if (n == 0) return;
  Block* b = calloc(1, sizeof(Block));
  b->start = qemu_plugin_tb_vaddr(tb);
  Insn prev = {.ev = -1, .dest = -1};
  for (size_t i = 0; i < n; i++) {
    struct qemu_plugin_insn* insn = qemu_plugin_tb_get_insn(tb, i);
    char* text = qemu_plugin_insn_disas(insn);
    Insn in;
    classify(text ? text : "", &in);
    int ev = in.ev;
    bool dep = in.addr_regs && prev.writes_reg && prev.dest >= 0 &&
               (in.addr_regs & (1u << prev.dest));
    // A single load or store after a single load pipelines with it (one cycle less) unless
    // the load's destination is the address register of the next.
    if (in.is_single_ls && prev.is_load && !(prev.dest >= 0 && (in.addr_regs & (1u << prev.dest))))
      ev = EV_LS_PIPE;
    qemu_plugin_register_vcpu_insn_exec_inline(insn, EFK_INLINE_ADD_U64, &counts[EV_INSNS], 1);
    qemu_plugin_register_vcpu_insn_exec_inline(insn, EFK_INLINE_ADD_U64, &counts[ev], 1);
    if (in.regs)
      qemu_plugin_register_vcpu_insn_exec_inline(
          insn, EFK_INLINE_ADD_U64, &counts[ev == EV_VLSM ? EV_VLSM_REGS : EV_LSM_REGS],
          (uint64_t)in.regs);
    if (dep)
      qemu_plugin_register_vcpu_insn_exec_inline(insn, EFK_INLINE_ADD_U64, &counts[EV_ADDR_DEP], 1);
    qemu_plugin_register_vcpu_mem_cb(insn, mem_read, EFK_CB_NO_REGS, EFK_MEM_RW, NULL);
    if (i == n - 1) {
      b->end = qemu_plugin_insn_vaddr(insn) + qemu_plugin_insn_size(insn);
      b->fallthrough = b->end;
      b->ends_with_control = in.control;
      if (in.control)
        qemu_plugin_register_vcpu_insn_exec_inline(insn, EFK_INLINE_ADD_U64, &branch_execs, 1);
    }
    if (dump && out)
      fprintf(out, "insn %llx %-40s %s%s\n", (unsigned long long)qemu_plugin_insn_vaddr(insn),
              text ? text : "?", kEventNames[ev], dep ? " +addr_dep" : "");
    if (dump && out) fflush(out);
    free(text);
    prev = in;
  }
  qemu_plugin_register_vcpu_tb_exec_cb(tb, block_exec, EFK_CB_NO_REGS, b);
}

static void at_exit(qemu_plugin_id_t id, void* ud) {
  (void)id;
  (void)ud;
  emit("efkcyc_total", counts);
  if (out) fclose(out);
  out = NULL;
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                               const efk_qemu_info_t* info,
                                                               int argc, char** argv) {
  (void)info;
  for (int i = 0; i < argc; i++) {
    const char* a = argv[i];
    if (strncmp(a, "out=", 4) == 0) {
      out = fopen(a + 4, "w");
      if (!out) {
        fprintf(stderr, "m4_cycles: cannot write %s\n", a + 4);
        return -1;
      }
    } else if (strncmp(a, "mark=", 5) == 0) {
      mark_addr = strtoull(a + 5, NULL, 0);
    } else if (strncmp(a, "min=", 4) == 0) {
      min_insns = strtoull(a + 4, NULL, 0);
    } else if (strncmp(a, "flash=", 6) == 0) {
      char* colon;
      flash_lo = strtoull(a + 6, &colon, 0);
      flash_hi = *colon == ':' ? strtoull(colon + 1, NULL, 0) : flash_lo;
    } else if (strncmp(a, "dump=", 5) == 0) {
      dump = atoi(a + 5);
    } else {
      fprintf(stderr, "m4_cycles: unknown argument %s (out=, mark=, min=, flash=, dump=)\n", a);
      return -1;
    }
  }
  FILE* f = out ? out : stdout;
  fputs("efkcyc_names", f);
  for (int i = 0; i < EV_COUNT; i++) fprintf(f, " %s", kEventNames[i]);
  fputc('\n', f);
  fflush(f);
  qemu_plugin_register_vcpu_tb_trans_cb(id, block_trans);
  qemu_plugin_register_atexit_cb(id, at_exit, NULL);
  return 0;
}
