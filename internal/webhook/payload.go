package webhook

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Event types.
const (
	RoomOccupied        = "room.occupied"
	RoomVacated         = "room.vacated"
	MemberJoined        = "member.joined"
	MemberLeft          = "member.left"
	MessageDeadLettered = "message.dead_lettered"
)

// Events lists every event type, in the order the docs give them.
var Events = []string{RoomOccupied, RoomVacated, MemberJoined, MemberLeft, MessageDeadLettered}

// ValidEvent reports whether s is an event type.
func ValidEvent(s string) bool {
	for _, e := range Events {
		if e == s {
			return true
		}
	}
	return false
}

// Payload is the JSON body of every webhook (openapi.yaml's
// components.schemas.Webhook).
type Payload struct {
	// ID names the event: the same in every attempt and for every
	// endpoint (HeaderID).
	ID   string `json:"id"`
	Type string `json:"type"`
	NS   string `json:"ns"`
	// Time is when it happened (for room.occupied and room.vacated, the
	// last change of the room before the debounce ran out).
	Time time.Time `json:"time"`
	Data any       `json:"data"`
}

// RoomData is the data of room.occupied and room.vacated.
type RoomData struct {
	Room string `json:"room"`
}

// MemberData is the data of member.joined and member.left.
type MemberData struct {
	Room string `json:"room"`
	// Connection is the connection's public id.
	Connection string `json:"connection"`
	// User is the connection's user (a JWT's sub), absent in open
	// namespaces.
	User string `json:"user,omitempty"`
}

// DeadLetterData is the data of message.dead_lettered.
type DeadLetterData struct {
	Room  string `json:"room"`
	Group string `json:"group"`
	// MessageID is the parked message's id.
	MessageID  string `json:"message_id"`
	Event      string `json:"event"`
	Deliveries uint64 `json:"deliveries"`
	Reason     string `json:"reason"`
}

// derivedID names an event decided from durable state (a room's change, a
// dead letter): whoever decides it again gets the same id.
func derivedID(key string) string {
	h := sha256.Sum256([]byte("roomcast-webhook:" + key))
	return "wh_" + hex.EncodeToString(h[:16])
}

// randomID names an event that happened once (a join, a leave).
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails on Linux ≥ 3.17
	return "wh_" + hex.EncodeToString(b[:])
}
