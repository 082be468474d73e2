package uaftest

import (
	"slices"

	"github.com/fidoserver/hwfido/uaf"
)

// node is a TLV element under construction; composite nodes encode their kids.
type node struct {
	tag   uaf.Tag
	value []byte
	kids  []*node
	comp  bool
}

func leaf(t uaf.Tag, v []byte) *node { return &node{tag: t, value: v} }

func composite(t uaf.Tag, kids ...*node) *node { return &node{tag: t, kids: kids, comp: true} }

// raw wraps an already encoded TLV (a signed KRD / SIGNED_DATA).
func raw(tlv []byte) *node {
	t := uaf.Tag(uint16(tlv[0]) | uint16(tlv[1])<<8)
	return &node{tag: t, value: tlv[4:]}
}

func (n *node) encode() []byte {
	v := n.value
	if n.comp {
		v = nil
		for _, k := range n.kids {
			v = append(v, k.encode()...)
		}
	}
	return uaf.AppendTLV(nil, n.tag, v)
}

// applyTagFaults applies the tag-targeted faults to nodes and their
// descendants.
func applyTagFaults(nodes []*node, b *build) {
	for i, f := range b.faults {
		switch f.kind {
		case fMissingTag, fEmptyTag, fDuplicateTag, fTagLength:
		default:
			continue
		}
		if mutate(nodes, f) {
			b.applied[i] = true
		}
	}
}

func mutate(nodes []*node, f Fault) bool {
	hit := false
	for _, n := range nodes {
		if !n.comp {
			continue
		}
		for i := 0; i < len(n.kids); i++ {
			k := n.kids[i]
			if k.tag != f.tag {
				continue
			}
			hit = true
			switch f.kind {
			case fMissingTag:
				n.kids = slices.Delete(n.kids, i, i+1)
				i--
			case fEmptyTag:
				*k = node{tag: k.tag}
			case fDuplicateTag:
				c := *k
				n.kids = slices.Insert(n.kids, i+1, &c)
				i++
			case fTagLength:
				v := k.encode()[4:]
				if len(v) > f.n {
					v = v[:f.n]
				} else {
					v = append(v, make([]byte, f.n-len(v))...)
				}
				*k = node{tag: k.tag, value: v}
			}
		}
		if mutate(n.kids, f) {
			hit = true
		}
	}
	return hit
}
