module samepatch

go 1.22
