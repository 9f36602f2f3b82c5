package hub

import "testing"

func TestMatches(t *testing.T) {
	const me, other = ConnID("AAAAAAAAAAAAAAAAAAAAAA"), ConnID("BBBBBBBBBBBBBBBBBBBBBB")
	type msg struct {
		Group  bool
		To     ConnID
		Rooms  []string
		Except []string
	}
	at := func(seq uint64, m msg) *Message {
		return &Message{Pos: Position{testEpoch, seq}, GroupOnly: m.Group, To: m.To, Rooms: m.Rooms, Except: m.Except}
	}
	tests := []struct {
		name  string
		id    ConnID
		rooms map[string]uint64
		m     *Message
		want  bool
	}{
		{"namespace-wide reaches a conn in no room", me, nil, at(5, msg{}), true},
		{"namespace-wide reaches a conn in rooms", me, map[string]uint64{"a": 0}, at(5, msg{}), true},
		{"direct reaches its target", me, nil, at(5, msg{To: me}), true},
		{"direct does not reach another conn", other, map[string]uint64{"a": 0}, at(5, msg{To: me}), false},
		{"direct does not reach history (no id)", "", map[string]uint64{"a": 0}, at(5, msg{To: me}), false},
		{"direct is not widened by the target's rooms", other, map[string]uint64{"a": 0}, at(5, msg{To: me, Rooms: []string{"a"}}), false},
		{"room reaches a member", me, map[string]uint64{"a": 0}, at(5, msg{Rooms: []string{"a"}}), true},
		{"room does not reach a non-member", me, map[string]uint64{"b": 0}, at(5, msg{Rooms: []string{"a"}}), false},
		{"room does not reach a conn in no room", me, nil, at(5, msg{Rooms: []string{"a"}}), false},
		{"room names are exact, not prefixes", me, map[string]uint64{"orders": 0}, at(5, msg{Rooms: []string{"orders.eu"}}), false},
		{"multi-room reaches a member of the second room", me, map[string]uint64{"b": 0}, at(5, msg{Rooms: []string{"a", "b"}}), true},
		{"multi-room reaches a member of both", me, map[string]uint64{"a": 0, "b": 0}, at(5, msg{Rooms: []string{"a", "b"}}), true},
		{"room message before the join is not received", me, map[string]uint64{"a": 5}, at(5, msg{Rooms: []string{"a"}}), false},
		{"room message right after the join is received", me, map[string]uint64{"a": 5}, at(6, msg{Rooms: []string{"a"}}), true},
		{"multi-room: an earlier join of the other room counts", me, map[string]uint64{"a": 9, "b": 1}, at(5, msg{Rooms: []string{"a", "b"}}), true},
		{"multi-room: joined both after it", me, map[string]uint64{"a": 9, "b": 5}, at(5, msg{Rooms: []string{"a", "b"}}), false},
		{"namespace-wide ignores join sequences", me, map[string]uint64{"a": 9}, at(5, msg{}), true},
		{"except by id excludes that conn", me, nil, at(5, msg{Except: []string{string(me)}}), false},
		{"except by id spares others", other, nil, at(5, msg{Except: []string{string(me)}}), true},
		{"except by id on a room message", me, map[string]uint64{"a": 0}, at(5, msg{Rooms: []string{"a"}, Except: []string{string(me)}}), false},
		{"except by room excludes its members", me, map[string]uint64{"a": 0, "vip": 0}, at(5, msg{Rooms: []string{"a"}, Except: []string{"vip"}}), false},
		{"except by room spares non-members", me, map[string]uint64{"a": 0}, at(5, msg{Rooms: []string{"a"}, Except: []string{"vip"}}), true},
		{"except by room on namespace-wide", me, map[string]uint64{"vip": 0}, at(5, msg{Except: []string{"vip"}}), false},
		{"except a target room excludes everyone in it", me, map[string]uint64{"a": 0, "b": 0}, at(5, msg{Rooms: []string{"a", "b"}, Except: []string{"b"}}), false},
		{"except on a direct message to self", me, nil, at(5, msg{To: me, Except: []string{string(me)}}), false},
		{"a dead letter replayed to a group reaches no connection", me, map[string]uint64{"a": 0}, at(5, msg{Group: true, Rooms: []string{"a"}}), false},
		{"except of an empty id never matches history", "", map[string]uint64{"a": 0}, at(5, msg{Rooms: []string{"a"}, Except: []string{string(me)}}), true},
	}
	for _, tt := range tests {
		if got := matches(tt.id, tt.rooms, tt.m); got != tt.want {
			t.Errorf("%s: matches(%q, %v, to=%q rooms=%v except=%v seq=%d) = %v, want %v",
				tt.name, tt.id, tt.rooms, tt.m.To, tt.m.Rooms, tt.m.Except, tt.m.Pos.Seq, got, tt.want)
		}
	}
}
