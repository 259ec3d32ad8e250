package network

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Every rule Wharf adds carries a comment (nftables rule userdata, the same TLV that `nft` and iptables-nft
// show as a comment) starting with tagPrefix:
//
//	"wharf base <name> ..."                  base rules in Wharf's own table
//	"wharf ctr=<id> tcp 0.0.0.0:8080->IP:80"  one published port of one container
//	"wharf bridge=<name> in|out"             accept rules in Docker's DOCKER-USER chain
const tagPrefix = "wharf "

const (
	chainGuard       = "guard"
	chainPrerouting  = "prerouting"
	chainOutput      = "output"
	chainPorts       = "ports"
	chainPostrouting = "postrouting"
	chainForward     = "forward"
)

// ruleSpec is a rule to be added, identified by its tag.
type ruleSpec struct {
	tag   string
	exprs []expr.Any
}

func ruleTag(r *nftables.Rule) string {
	s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return s
}

func tagUserData(tag string) []byte { return userdata.AppendString(nil, userdata.TypeComment, tag) }

func ctrTagPrefix(id string) string { return tagPrefix + "ctr=" + id + " " }

func portTag(id string, ctrIP netip.Addr, p PortBinding) string {
	return fmt.Sprintf("%s%s %s:%d->%s:%d", ctrTagPrefix(id), p.Proto, p.HostIP, p.HostPort, ctrIP, p.ContainerPort)
}

// ---- expression helpers ----

func ifnameBytes(n string) []byte { return append([]byte(n), 0) } // exact match, as iptables-nft encodes it

func metaIf(key expr.MetaKey, op expr.CmpOp, name string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: ifnameBytes(name)},
	}
}

func iif(name string) []expr.Any    { return metaIf(expr.MetaKeyIIFNAME, expr.CmpOpEq, name) }
func oif(name string) []expr.Any    { return metaIf(expr.MetaKeyOIFNAME, expr.CmpOpEq, name) }
func notOif(name string) []expr.Any { return metaIf(expr.MetaKeyOIFNAME, expr.CmpOpNeq, name) }
func accept() expr.Any              { return &expr.Verdict{Kind: expr.VerdictAccept} }
func drop() expr.Any                { return &expr.Verdict{Kind: expr.VerdictDrop} }
func jump(chain string) expr.Any    { return &expr.Verdict{Kind: expr.VerdictJump, Chain: chain} }
func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// ipMatch matches the source (saddr=true) or destination address against a prefix.
func ipMatch(saddr bool, p netip.Prefix) []expr.Any {
	off := uint32(16)
	if saddr {
		off = 12
	}
	out := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4}}
	if p.Bits() < 32 {
		mask := uint32(0xffffffff) << (32 - p.Bits())
		out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.BigEndian.PutUint32(mask), Xor: []byte{0, 0, 0, 0}})
	}
	a := p.Masked().Addr().As4()
	return append(out, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]})
}

func fibDaddrLocal() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

func ctBits(key expr.CtKey, bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: key, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
	}
}

const ipsDstNAT = 0x20 // IPS_DST_NAT

func l4proto(proto string) byte {
	if proto == "udp" {
		return unix.IPPROTO_UDP
	}
	return unix.IPPROTO_TCP
}

// dnatExprs: [ip daddr HOSTIP] meta l4proto P th dport HOSTPORT dnat to CTRIP:CTRPORT
func dnatExprs(ctrIP netip.Addr, p PortBinding) []expr.Any {
	var out []expr.Any
	if hip := netip.MustParseAddr(p.HostIP); hip != anyV4 {
		out = append(out, ipMatch(false, netip.PrefixFrom(hip, 32))...)
	}
	cip := ctrIP.As4()
	return append(out,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{l4proto(p.Proto)}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(p.HostPort)},
		&expr.Immediate{Register: 1, Data: cip[:]},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(p.ContainerPort)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	)
}

// ---- the firewall ----

type firewall struct {
	conn   *nftables.Conn
	table  *nftables.Table
	bridge string
	subnet netip.Prefix
	nets   []fwNet // user-defined networks, in a stable order (their rules are part of the base chains)
}

// fwNet is what the firewall needs of a user-defined network.
type fwNet struct {
	bridge   string
	subnet   netip.Prefix
	gateway  netip.Addr
	internal bool
}

func newFirewall(tableName, bridge string, subnet netip.Prefix) (*firewall, error) {
	conn, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return nil, fmt.Errorf("opening nftables: %w", err)
	}
	return &firewall{
		conn:   conn,
		table:  &nftables.Table{Name: tableName, Family: nftables.TableFamilyIPv4},
		bridge: bridge,
		subnet: subnet,
	}, nil
}

func (f *firewall) close() error { return f.conn.CloseLasting() }

func (f *firewall) chain(name string) *nftables.Chain {
	return &nftables.Chain{Name: name, Table: f.table}
}

func prio(p nftables.ChainPriority) *nftables.ChainPriority { return &p }

func (f *firewall) baseChains() []*nftables.Chain {
	accept := nftables.ChainPolicyAccept
	return []*nftables.Chain{
		{Name: chainGuard, Table: f.table, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw, Policy: &accept},
		{Name: chainPrerouting, Table: f.table, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept},
		{Name: chainOutput, Table: f.table, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest, Policy: &accept},
		{Name: chainPostrouting, Table: f.table, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept},
		// Before iptables' filter FORWARD (priority 0): our drops are final, our accepts only let the packet
		// go on to the other base chains (hence the DOCKER-USER rules below).
		{Name: chainForward, Table: f.table, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookForward, Priority: prio(-1), Policy: &accept},
	}
}

// baseRules are the rules of each base chain, by chain name.
func (f *firewall) baseRules() map[string][]ruleSpec {
	br, sn := f.bridge, f.subnet
	lo := netip.MustParsePrefix("127.0.0.0/8")
	t := func(s string) string { return tagPrefix + "base " + s }
	rules := map[string][]ruleSpec{
		// route_localnet=1 on the bridge lets DNATed 127.0.0.1 traffic leave through it; never let a container
		// use that to reach the host's loopback services (checked before conntrack un-NATs replies).
		chainGuard:      {{t("guard-localnet " + br), cat(iif(br), ipMatch(false, lo), []expr.Any{drop()})}},
		chainPrerouting: {{t("dnat-local"), cat(fibDaddrLocal(), []expr.Any{jump(chainPorts)})}},
		chainOutput:     {{t("dnat-local"), cat(fibDaddrLocal(), []expr.Any{jump(chainPorts)})}},
		chainPostrouting: {
			{t("masq-localhost " + br), cat(oif(br), ipMatch(true, lo), []expr.Any{&expr.Masq{}})},
			{t("masq-hairpin " + br + " " + sn.String()), cat(oif(br), ipMatch(true, sn), ctBits(expr.CtKeySTATUS, ipsDstNAT), []expr.Any{&expr.Masq{}})},
			{t("masq-out " + br + " " + sn.String()), cat(notOif(br), ipMatch(true, sn), []expr.Any{&expr.Masq{}})},
		},
		chainForward: {
			{t("fwd-from " + br), cat(iif(br), []expr.Any{accept()})},
			{t("fwd-established " + br), cat(oif(br), ctBits(expr.CtKeySTATE, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), []expr.Any{accept()})},
			{t("fwd-published " + br), cat(oif(br), ctBits(expr.CtKeySTATUS, ipsDstNAT), []expr.Any{accept()})},
			{t("fwd-drop " + br), cat(oif(br), []expr.Any{drop()})},
		},
	}
	// User-defined networks. Their forward rules come first: what enters a user network's bridge from
	// anywhere else (the default bridge, another user network, outside) is dropped unless it answers a
	// connection made from inside or goes to a published port; an internal network's traffic never leaves
	// its bridge. Traffic within one bridge (ICC, seen here only with br_netfilter) is untouched.
	var fwd, dnsAccept, dnsDrop []ruleSpec
	for _, n := range f.nets {
		b := n.bridge
		gw := netip.PrefixFrom(n.gateway, 32)
		rules[chainGuard] = append(rules[chainGuard],
			ruleSpec{t("guard-localnet " + b), cat(iif(b), ipMatch(false, lo), []expr.Any{drop()})})
		// The embedded DNS servers listen on the gateways: only containers of user networks may ask them
		// (any of them: a container disconnected from its first network still has that server in its
		// resolv.conf; the server answers it with the names of its own networks only).
		dnsAccept = append(dnsAccept,
			ruleSpec{t("guard-dns-from-udp " + b), cat(iif(b), l4dport(unix.IPPROTO_UDP, 53), []expr.Any{accept()})},
			ruleSpec{t("guard-dns-from-tcp " + b), cat(iif(b), l4dport(unix.IPPROTO_TCP, 53), []expr.Any{accept()})})
		dnsDrop = append(dnsDrop,
			ruleSpec{t("guard-dns-udp " + b), cat(ipMatch(false, gw), l4dport(unix.IPPROTO_UDP, 53), []expr.Any{drop()})},
			ruleSpec{t("guard-dns-tcp " + b), cat(ipMatch(false, gw), l4dport(unix.IPPROTO_TCP, 53), []expr.Any{drop()})})
		rules[chainPostrouting] = append(rules[chainPostrouting],
			ruleSpec{t("masq-localhost " + b), cat(oif(b), ipMatch(true, lo), []expr.Any{&expr.Masq{}})},
			ruleSpec{t("masq-hairpin " + b + " " + n.subnet.String()), cat(oif(b), ipMatch(true, n.subnet), ctBits(expr.CtKeySTATUS, ipsDstNAT), []expr.Any{&expr.Masq{}})},
		)
		if !n.internal {
			rules[chainPostrouting] = append(rules[chainPostrouting],
				ruleSpec{t("masq-out " + b + " " + n.subnet.String()), cat(notOif(b), ipMatch(true, n.subnet), []expr.Any{&expr.Masq{}})})
		}
		fwd = append(fwd,
			ruleSpec{t("fwd-into-established " + b), cat(oif(b), notIif(b), ctBits(expr.CtKeySTATE, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), []expr.Any{accept()})},
			ruleSpec{t("fwd-into-published " + b), cat(oif(b), notIif(b), ctBits(expr.CtKeySTATUS, ipsDstNAT), []expr.Any{accept()})},
			ruleSpec{t("fwd-into-drop " + b), cat(oif(b), notIif(b), []expr.Any{drop()})},
		)
		if n.internal {
			fwd = append(fwd, ruleSpec{t("fwd-internal " + b), cat(iif(b), notOif(b), []expr.Any{drop()})})
		}
	}
	rules[chainGuard] = append(append(rules[chainGuard], dnsAccept...), dnsDrop...)
	rules[chainForward] = append(fwd, rules[chainForward]...)
	return rules
}

func notIif(name string) []expr.Any { return metaIf(expr.MetaKeyIIFNAME, expr.CmpOpNeq, name) }

// l4dport: meta l4proto P th dport PORT
func l4dport(proto byte, port uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
	}
}

// ensureBase creates the table and chains if needed and makes every base chain hold exactly its base rules
// (a chain that differs is flushed and refilled in the same transaction). Container rules are not touched.
func (f *firewall) ensureBase() error {
	tables, err := f.conn.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return fmt.Errorf("listing nftables tables: %w", err)
	}
	exists := false
	for _, t := range tables {
		if t.Name == f.table.Name {
			exists = true
		}
	}
	want := f.baseRules()
	current := map[string][]*nftables.Rule{}
	if exists {
		for _, c := range f.baseChains() {
			rules, err := f.conn.GetRules(f.table, c)
			if err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("listing rules of %s: %w", c.Name, err)
			}
			current[c.Name] = rules
		}
	}
	f.conn.AddTable(f.table)
	for _, c := range f.baseChains() {
		f.conn.AddChain(c)
	}
	f.conn.AddChain(f.chain(chainPorts))
	for _, c := range f.baseChains() {
		specs := want[c.Name]
		if sameTags(current[c.Name], specs) {
			continue
		}
		if len(current[c.Name]) > 0 {
			f.conn.FlushChain(c)
		}
		for _, s := range specs {
			f.conn.AddRule(&nftables.Rule{Table: f.table, Chain: c, Exprs: s.exprs, UserData: tagUserData(s.tag)})
		}
	}
	if err := f.conn.Flush(); err != nil {
		return fmt.Errorf("programming nftables table %s: %w", f.table.Name, err)
	}
	return nil
}

func sameTags(have []*nftables.Rule, want []ruleSpec) bool {
	if len(have) != len(want) {
		return false
	}
	for i := range have {
		if ruleTag(have[i]) != want[i].tag {
			return false
		}
	}
	return true
}

// portRules lists the container rules in the ports chain, grouped by container ID.
func (f *firewall) portRules() (map[string][]*nftables.Rule, error) {
	rules, err := f.conn.GetRules(f.table, f.chain(chainPorts))
	if err != nil {
		return nil, fmt.Errorf("listing published port rules: %w", err)
	}
	out := map[string][]*nftables.Rule{}
	for _, r := range rules {
		tag := ruleTag(r)
		rest, ok := strings.CutPrefix(tag, tagPrefix+"ctr=")
		if !ok {
			out[""] = append(out[""], r) // not ours / malformed: removed by Reconcile
			continue
		}
		id, _, _ := strings.Cut(rest, " ")
		out[id] = append(out[id], r)
	}
	return out, nil
}

// addPorts adds the DNAT rules of one container in one transaction.
func (f *firewall) addPorts(id string, ctrIP netip.Addr, ports []PortBinding) error {
	if len(ports) == 0 {
		return nil
	}
	c := f.chain(chainPorts)
	n := 0
	for _, p := range ports {
		f.conn.AddRule(&nftables.Rule{Table: f.table, Chain: c, Exprs: dnatExprs(ctrIP, p), UserData: tagUserData(portTag(id, ctrIP, p))})
		if err := f.batched(&n); err != nil {
			return fmt.Errorf("programming published ports: %w", err)
		}
	}
	if err := f.conn.Flush(); err != nil {
		return fmt.Errorf("programming published ports: %w", err)
	}
	return nil
}

// delRules deletes rules (by handle) in one transaction.
func (f *firewall) delRules(rules []*nftables.Rule) error {
	if len(rules) == 0 {
		return nil
	}
	n := 0
	for _, r := range rules {
		if err := f.conn.DelRule(r); err != nil {
			return err
		}
		if err := f.batched(&n); err != nil {
			return err
		}
	}
	return f.conn.Flush()
}

// nftBatch bounds the rule changes sent in one netlink transaction: a thousand rules in one message exceed
// the socket's limit ("message too long"). Callers undo by tag on failure, so splitting keeps nothing half-made.
const nftBatch = 50

// batched counts one queued change and flushes every nftBatch of them.
func (f *firewall) batched(n *int) error {
	*n++
	if *n%nftBatch == 0 {
		return f.conn.Flush()
	}
	return nil
}

// delPorts removes every rule tagged with the container's ID.
func (f *firewall) delPorts(id string) error {
	byID, err := f.portRules()
	if err != nil {
		return err
	}
	if err := f.delRules(byID[id]); err != nil {
		return fmt.Errorf("removing published port rules of %s: %w", id, err)
	}
	return nil
}

// syncPorts makes the ports chain hold exactly want (by tag): extra and duplicate rules are deleted and
// missing ones added, in one transaction.
func (f *firewall) syncPorts(want map[string][]ruleSpec) error {
	byID, err := f.portRules()
	if err != nil {
		return err
	}
	c := f.chain(chainPorts)
	changed := false
	n := 0
	for id, rules := range byID {
		wanted := map[string]bool{}
		for _, s := range want[id] {
			wanted[s.tag] = true
		}
		seen := map[string]bool{}
		for _, r := range rules {
			tag := ruleTag(r)
			if !wanted[tag] || seen[tag] {
				if err := f.conn.DelRule(r); err != nil {
					return err
				}
				changed = true
				if err := f.batched(&n); err != nil {
					return err
				}
				continue
			}
			seen[tag] = true
		}
		for _, s := range want[id] {
			if !seen[s.tag] {
				f.conn.AddRule(&nftables.Rule{Table: f.table, Chain: c, Exprs: s.exprs, UserData: tagUserData(s.tag)})
				changed = true
				if err := f.batched(&n); err != nil {
					return err
				}
			}
		}
	}
	for id, specs := range want {
		if _, ok := byID[id]; ok {
			continue
		}
		for _, s := range specs {
			f.conn.AddRule(&nftables.Rule{Table: f.table, Chain: c, Exprs: s.exprs, UserData: tagUserData(s.tag)})
			changed = true
			if err := f.batched(&n); err != nil {
				return err
			}
		}
	}
	if !changed {
		return nil
	}
	if err := f.conn.Flush(); err != nil {
		return fmt.Errorf("reconciling published port rules: %w", err)
	}
	return nil
}

func portSpecs(id string, ctrIP netip.Addr, ports []PortBinding) []ruleSpec {
	out := make([]ruleSpec, 0, len(ports))
	for _, p := range ports {
		out = append(out, ruleSpec{tag: portTag(id, ctrIP, p), exprs: dnatExprs(ctrIP, p)})
	}
	return out
}

// ---- coexistence with iptables (Docker) ----

// Docker's (iptables-nft) table ip filter has a FORWARD base chain with policy DROP. A base chain's accept
// does not stop the other base chains on the same hook, so bridged and routed traffic of our bridge must
// also be accepted there. The chain meant for users is DOCKER-USER: we insert two rules at its head, each
// tagged "wharf bridge=<name> in|out", using only expressions iptables-nft can parse (meta + cmp + verdict)
// so `iptables -S` and Docker itself keep working. The real policy (what may enter the bridge) is enforced
// in our own forward chain, which runs earlier. Without DOCKER-USER but with a filter FORWARD chain whose
// policy is DROP (a non-Docker iptables firewall), the same rules go to the head of FORWARD.

const iptFilterTable = "filter"

func userTagPrefix(bridge string) string { return tagPrefix + "bridge=" + bridge + " " }

func userRules(bridge string) []ruleSpec {
	p := userTagPrefix(bridge)
	return []ruleSpec{
		{p + "in", cat(iif(bridge), []expr.Any{accept()})},
		{p + "out", cat(oif(bridge), []expr.Any{accept()})},
	}
}

// iptablesAcceptChain returns the iptables-nft chain to put our accept rules in, or nil if none is needed.
func iptablesAcceptChain(conn *nftables.Conn) (*nftables.Chain, error) {
	chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil, fmt.Errorf("listing nftables chains: %w", err)
	}
	var forward *nftables.Chain
	for _, c := range chains {
		if c.Table == nil || c.Table.Name != iptFilterTable {
			continue
		}
		switch c.Name {
		case "DOCKER-USER":
			return c, nil
		case "FORWARD":
			forward = c
		}
	}
	if forward != nil && forward.Policy != nil && *forward.Policy == nftables.ChainPolicyDrop {
		return forward, nil
	}
	return nil, nil
}

// ensureUserRules makes sure our accept rules are present once, at the head of the chain chosen above.
func ensureUserRules(conn *nftables.Conn, bridge string) error {
	c, err := iptablesAcceptChain(conn)
	if err != nil || c == nil {
		return err
	}
	rules, err := conn.GetRules(c.Table, c)
	if err != nil {
		return fmt.Errorf("listing rules of %s %s: %w", c.Table.Name, c.Name, err)
	}
	want := userRules(bridge)
	prefix := userTagPrefix(bridge)
	var ours []*nftables.Rule
	for _, r := range rules {
		if strings.HasPrefix(ruleTag(r), prefix) {
			ours = append(ours, r)
		}
	}
	// Present, in order, at the head of the chain: nothing to do.
	if len(ours) == len(want) && len(rules) >= len(want) {
		ok := true
		for i := range want {
			if ruleTag(rules[i]) != want[i].tag {
				ok = false
			}
		}
		if ok {
			return nil
		}
	}
	for _, r := range ours {
		if err := conn.DelRule(r); err != nil {
			return err
		}
	}
	for i := len(want) - 1; i >= 0; i-- { // InsertRule prepends
		conn.InsertRule(&nftables.Rule{Table: c.Table, Chain: c, Exprs: want[i].exprs, UserData: tagUserData(want[i].tag)})
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("adding accept rules for %s to %s %s: %w", bridge, c.Table.Name, c.Name, err)
	}
	return nil
}

// removeUserRules deletes exactly our tagged rules for the bridge from iptables' filter table.
func removeUserRules(conn *nftables.Conn, bridge string) error {
	chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return fmt.Errorf("listing nftables chains: %w", err)
	}
	prefix := userTagPrefix(bridge)
	n := 0
	for _, c := range chains {
		if c.Table == nil || c.Table.Name != iptFilterTable || (c.Name != "DOCKER-USER" && c.Name != "FORWARD") {
			continue
		}
		rules, err := conn.GetRules(c.Table, c)
		if err != nil {
			return err
		}
		for _, r := range rules {
			if strings.HasPrefix(ruleTag(r), prefix) {
				if err := conn.DelRule(r); err != nil {
					return err
				}
				n++
			}
		}
	}
	if n == 0 {
		return nil
	}
	return conn.Flush()
}

// tablesServing lists Wharf tables (name starting with "wharf") whose base rules were written for the
// bridge, other than except: e.g. one left by an earlier version under another table name.
func tablesServing(conn *nftables.Conn, bridge, except string) ([]*nftables.Table, error) {
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil, fmt.Errorf("listing nftables tables: %w", err)
	}
	var out []*nftables.Table
	for _, t := range tables {
		if t.Name == except || !strings.HasPrefix(t.Name, "wharf") {
			continue
		}
		rules, err := conn.GetRules(t, &nftables.Chain{Name: chainForward, Table: t})
		if err != nil {
			continue // no such chain: not one of ours
		}
		for _, r := range rules {
			if ruleTag(r) == tagPrefix+"base fwd-from "+bridge {
				out = append(out, t)
				break
			}
		}
	}
	return out, nil
}

// dropStaleTables deletes other Wharf tables serving the bridge (two tables would NAT the same traffic).
func dropStaleTables(conn *nftables.Conn, bridge, keep string) error {
	stale, err := tablesServing(conn, bridge, keep)
	if err != nil || len(stale) == 0 {
		return err
	}
	for _, t := range stale {
		conn.DelTable(t)
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("removing stale nftables tables for %s: %w", bridge, err)
	}
	return nil
}
